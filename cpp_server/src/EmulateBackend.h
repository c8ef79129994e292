// EmulateBackend: the `emulate` accelerator — a virtual board that runs its partition's program
// file on the CPU, bit-exactly (Emulator).
// Thread safety: as Accelerator (run() from one thread).
#pragma once

#include <memory>
#include <string>

#include "Accelerator.h"
#include "Emulator.h"

namespace finnsplit {

class EmulateBackend : public Accelerator {
 public:
  static Status create(const std::string& programPath, std::unique_ptr<Accelerator>* out);

  const char* name() const override { return "emulate"; }
  const TensorSpec& inputSpec() const override { return emulator_->inputSpec(); }
  const TensorSpec& outputSpec() const override { return emulator_->outputSpec(); }
  Status run(const uint8_t* input, uint8_t* output) override { return emulator_->run(input, output); }

 private:
  std::unique_ptr<Emulator> emulator_;
};

}  // namespace finnsplit
