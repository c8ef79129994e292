// libFuzzer target for the program-file parser (docs/program-format.md): program files come from
// bundles, which arrive over the network and are parsed by the server before it drops root, so
// any byte string must be refused cleanly. Run: program_fuzzer -max_total_time=60 CORPUS
#include <cstddef>
#include <cstdint>

#include "Program.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  finnsplit::Program program;
  if (finnsplit::Program::parse(data, size, "fuzz", &program)) {
    // Walk what was accepted: every layer's blobs and typed attributes must be readable.
    for (const auto& layer : program.layers()) {
      for (const char* key : {"weights", "thresholds", "param"}) (void)program.param(layer, key);
      int64_t value = 0;
      std::vector<int64_t> values;
      (void)layer.intAttr("kernel", &value);
      (void)layer.intsAttr("pads", &values);
      (void)layer.outSpec.packedBytes();
    }
  }
  return 0;
}
