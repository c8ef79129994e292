#include "EmulateBackend.h"

#include "Log.h"
#include "Program.h"

namespace finnsplit {

Status EmulateBackend::create(const std::string& programPath, std::unique_ptr<Accelerator>* out) {
  Program program;
  Status st = Program::load(programPath, &program);
  if (!st) return st;
  auto backend = std::make_unique<EmulateBackend>();
  st = Emulator::build(program, &backend->emulator_);
  if (!st) return st;
  LOG_INFO("emulate: program %s, %zu layers, %s -> %s, %d-bit storage", program.name().c_str(),
           program.layers().size(), program.input().toString().c_str(), program.output().toString().c_str(),
           backend->emulator_->storageBits());
  *out = std::move(backend);
  return Status::ok();
}

}  // namespace finnsplit
