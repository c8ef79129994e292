// Tools: the subcommands of finnsplit-server (Options.h): serve, run, convert, and the choice of
// accelerator backend from the options.
// Thread safety: called from the main thread.
#pragma once

#include <memory>

#include "Accelerator.h"
#include "Options.h"

namespace finnsplit {

class Tools {
 public:
  // Builds the backend --backend names; errors say which option is missing or wrong.
  static Status makeAccelerator(const Options& options, std::unique_ptr<Accelerator>* out);
  // Each returns the process exit code.
  static int serve(const Options& options);
  static int runProgram(const Options& options);
  static int convert(const Options& options);
};

}  // namespace finnsplit
