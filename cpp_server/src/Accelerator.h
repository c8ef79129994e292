// Accelerator: the compute stage's backend (finn-zynq, emulate, delay). It maps one densely packed
// input frame (inputSpec) to one densely packed output frame (outputSpec).
// Thread safety: implementations need not be thread safe; the compute stage calls run() from one
// thread, after construction has finished.
#pragma once

#include <cstdint>

#include "Status.h"
#include "TensorSpec.h"

namespace finnsplit {

class Accelerator {
 public:
  virtual ~Accelerator() = default;
  virtual const char* name() const = 0;
  virtual const TensorSpec& inputSpec() const = 0;
  virtual const TensorSpec& outputSpec() const = 0;
  // input: inputSpec().packedBytes() bytes; output: outputSpec().packedBytes() bytes. An error
  // drops this frame only; the server keeps serving.
  virtual Status run(const uint8_t* input, uint8_t* output) = 0;
};

}  // namespace finnsplit
