#include "FinnZynqBackend.h"

#include <time.h>

#include <cstdlib>
#include <fstream>

#include "Clock.h"
#include "FinnPacking.h"
#include "Log.h"

namespace finnsplit {
namespace {

// "PATH@OFFSET" -> (PATH, OFFSET); OFFSET may be hex (0x...) or decimal.
Status splitLocation(const std::string& text, std::string* path, uint64_t* offset) {
  size_t at = text.rfind('@');
  *path = text.substr(0, at);
  *offset = 0;
  if (at == std::string::npos) return Status::ok();
  char* end = nullptr;
  *offset = std::strtoull(text.c_str() + at + 1, &end, 0);
  if (*end != '\0' || at + 1 == text.size()) return Status::error("bad register location '" + text + "'");
  return Status::ok();
}

Status physAddrOf(const std::string& device, uint64_t* out) {
  std::string name = device.substr(device.find_last_of('/') + 1);
  std::string sysfs = "/sys/class/u-dma-buf/" + name + "/phys_addr";
  std::ifstream file(sysfs);
  std::string text;
  if (!(file >> text)) return Status::error("cannot read " + sysfs + " (is u-dma-buf loaded? or pass the address)");
  char* end = nullptr;
  *out = std::strtoull(text.c_str(), &end, 16);
  if (*out == 0) return Status::error(sysfs + " holds '" + text + "', not a physical address");
  return Status::ok();
}

}  // namespace

Status FinnZynqBackend::create(const FinnZynqConfig& config, std::unique_ptr<Accelerator>* out) {
  auto backend = std::make_unique<FinnZynqBackend>();
  backend->config_ = config;
  const TensorSpec& in = config.in;
  const TensorSpec& outSpec = config.out;
  if (in.composite() || outSpec.composite()) {
    // one IODMA per tensor is not built yet (docs/finn.md#multi-tensor-boundaries)
    return Status::error("finn-zynq: this partition's boundary carries several tensors (" +
                         (in.composite() ? in : outSpec).toString() +
                         ", a cut inside a residual block); the finn-zynq backend drives one input and one output "
                         "IODMA and cannot run it: cut between blocks, or use the emulate backend");
  }
  Status st = FinnPacking::check(in.numElements(), in.dtype().bits(), config.inWordElems);
  if (!st) return st.withContext("finn-zynq input");
  st = FinnPacking::check(outSpec.numElements(), outSpec.dtype().bits(), config.outWordElems);
  if (!st) return st.withContext("finn-zynq output");
  const char* names[2] = {"input DMA", "output DMA"};
  const std::string* regs[2] = {&config.idmaRegs, &config.odmaRegs};
  Iodma* dmas[2] = {&backend->idma_, &backend->odma_};
  for (int i = 0; i < 2; ++i) {
    std::string path;
    uint64_t offset;
    if (!(st = splitLocation(*regs[i], &path, &offset))) return st;
    MappedRegion region;
    if (!(st = MappedRegion::map(path, offset, Iodma::kRegisterBytes, true, &region))) {
      return st.withContext(names[i]);
    }
    *dmas[i] = Iodma(std::move(region));
  }
  uint64_t inPhys = config.inPhys;
  uint64_t outPhys = config.outPhys;
  if (inPhys == 0 && !(st = physAddrOf(config.inBuffer, &inPhys))) return st;
  if (outPhys == 0 && !(st = physAddrOf(config.outBuffer, &outPhys))) return st;
  backend->config_.inPhys = inPhys;
  backend->config_.outPhys = outPhys;
  size_t inBytes = FinnPacking::packedBytes(in.numElements(), in.dtype().bits(), config.inWordElems);
  size_t outBytes = FinnPacking::packedBytes(outSpec.numElements(), outSpec.dtype().bits(), config.outWordElems);
  if (!(st = MappedRegion::map(config.inBuffer, 0, inBytes, true, &backend->inBuffer_))) return st;
  if (!(st = MappedRegion::map(config.outBuffer, 0, outBytes, true, &backend->outBuffer_))) return st;
  LOG_INFO("finn-zynq: %s (%lld per word, %zu B) -> %s (%lld per word, %zu B), buffers at 0x%llx / 0x%llx",
           in.toString().c_str(), static_cast<long long>(config.inWordElems), inBytes, outSpec.toString().c_str(),
           static_cast<long long>(config.outWordElems), outBytes, static_cast<unsigned long long>(inPhys),
           static_cast<unsigned long long>(outPhys));
  *out = std::move(backend);
  return Status::ok();
}

Status FinnZynqBackend::run(const uint8_t* input, uint8_t* output) {
  const TensorSpec& in = config_.in;
  const TensorSpec& out = config_.out;
  Status st = FinnPacking::denseToFinn(input, in.numElements(), in.dtype().bits(), config_.inWordElems, inBuffer_.data());
  if (!st) return st;
  if (!odma_.idle()) return Status::error("output DMA is not idle (ap_idle clear) before the frame");
  // Output first, so it is ready to drain the dataflow pipeline before input starts it.
  odma_.start(config_.outPhys, 1);
  idma_.start(config_.inPhys, 1);
  const int64_t deadline = monotonicMs() + config_.doneTimeoutMs;
  int spins = 0;
  while (!odma_.done()) {
    if (++spins > 1000) {
      timespec pause{0, 20000};
      nanosleep(&pause, nullptr);
      if (monotonicMs() > deadline) {
        return Status::error("output DMA did not signal ap_done within " + std::to_string(config_.doneTimeoutMs) + " ms");
      }
    }
  }
  __sync_synchronize();
  return FinnPacking::finnToDense(outBuffer_.data(), out.numElements(), out.dtype().bits(), config_.outWordElems,
                                  output);
}

}  // namespace finnsplit
