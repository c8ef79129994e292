// Emulator: executes a Program bit-exactly (docs/program-format.md). At load time it builds one
// kernel per layer, proving by range analysis whether 32-bit storage is exact (else it uses
// 64-bit), and preallocates two ping-pong activation buffers (a branching program: one buffer per
// tensor) and all scratch memory.
// Thread safety: run() may be called from one thread at a time; the accessors are const.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "Program.h"
#include "Status.h"
#include "TensorSpec.h"

namespace finnsplit {

class Emulator {
 public:
  virtual ~Emulator() = default;
  // Builds the kernels for `program`; the program may be discarded afterwards.
  static Status build(const Program& program, std::unique_ptr<Emulator>* out);

  const TensorSpec& inputSpec() const { return input_; }
  const TensorSpec& outputSpec() const { return output_; }
  // 32 or 64: the storage width the range analysis chose.
  virtual int storageBits() const = 0;
  // Densely packed input -> densely packed output. Fails only if an output value lies outside the
  // output datatype (the program's declared type is wrong), as core.packing.pack would.
  virtual Status run(const uint8_t* input, uint8_t* output) = 0;
  // Cumulative nanoseconds spent in each layer's kernel since build (for benchmarks).
  virtual std::vector<std::pair<std::string, int64_t>> layerTimes() const = 0;

 protected:
  TensorSpec input_;
  TensorSpec output_;
};

}  // namespace finnsplit
