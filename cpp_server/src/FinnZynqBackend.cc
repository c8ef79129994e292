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

// "2 tensors (UINT4 1x8x8x8 + UINT4 1x8x8x8)": how a count mismatch names the boundary.
std::string tensorsText(const TensorSpec& spec) {
  size_t n = spec.parts().size();
  return std::to_string(n) + (n == 1 ? " tensor (" : " tensors (") + spec.toString() + ")";
}

}  // namespace

Status FinnZynqBackend::openChannel(const std::string& name, const TensorSpec& spec, const FinnZynqChannel& config,
                                    Channel* out) {
  const std::string what = name + " (" + spec.toString() + ")";
  Status st = FinnPacking::check(spec.numElements(), spec.dtype().bits(), config.wordElems);
  if (!st) return st.withContext("finn-zynq " + what);
  std::string path;
  uint64_t offset;
  if (!(st = splitLocation(config.regs, &path, &offset))) return st.withContext(what);
  MappedRegion regs;
  if (!(st = MappedRegion::map(path, offset, Iodma::kRegisterBytes, true, &regs))) return st.withContext(what);
  out->name = name;
  out->spec = spec;
  out->config = config;
  out->dma = Iodma(std::move(regs));
  if (out->config.phys == 0 && !(st = physAddrOf(config.buffer, &out->config.phys))) return st.withContext(what);
  size_t bytes = FinnPacking::packedBytes(spec.numElements(), spec.dtype().bits(), config.wordElems);
  if (!(st = MappedRegion::map(config.buffer, 0, bytes, true, &out->buffer))) return st.withContext(what);
  LOG_INFO("finn-zynq: %s %s, %lld per word, %zu B at 0x%llx", name.c_str(), spec.toString().c_str(),
           static_cast<long long>(config.wordElems), bytes, static_cast<unsigned long long>(out->config.phys));
  return Status::ok();
}

Status FinnZynqBackend::create(const FinnZynqConfig& config, std::unique_ptr<Accelerator>* out) {
  auto backend = std::make_unique<FinnZynqBackend>();
  backend->config_ = config;
  struct Side {
    const char* prefix;  // FINN's make_zynq_proj names: idma0, idma1, ... / odma0, ...
    const char* flags;
    const TensorSpec* spec;
    const std::vector<FinnZynqChannel>* channels;
    std::vector<Channel>* opened;
  };
  const Side sides[2] = {
      {"idma", "--idma, --dmabuf-in, --in-word-elems", &config.in, &config.inputs, &backend->inputs_},
      {"odma", "--odma, --dmabuf-out, --out-word-elems", &config.out, &config.outputs, &backend->outputs_}};
  for (const Side& side : sides) {
    const std::vector<TensorSpec> parts = side.spec->parts();
    if (parts.size() != side.channels->size()) {
      // FINN's InsertIODMA makes one IODMA per graph input and output (docs/finn.md#multi-tensor-boundaries)
      return Status::error(std::string("finn-zynq: the ") + (side.prefix[0] == 'i' ? "input" : "output") +
                           " boundary carries " + tensorsText(*side.spec) + " but " +
                           std::to_string(side.channels->size()) + " " + side.prefix +
                           (side.channels->size() == 1 ? " is" : "s are") + " configured: " + side.flags +
                           " take one value per tensor, comma-separated, in boundary order");
    }
    for (size_t k = 0; k < parts.size(); ++k) {
      for (size_t j = 0; j < k; ++j) {
        if ((*side.channels)[j].buffer == (*side.channels)[k].buffer) {
          return Status::error(std::string("finn-zynq: ") + side.prefix + std::to_string(j) + " and " + side.prefix +
                               std::to_string(k) + " are given the same buffer " + (*side.channels)[k].buffer +
                               ": each tensor needs its own");
        }
      }
    }
    side.opened->resize(parts.size());
    for (size_t k = 0; k < parts.size(); ++k) {
      Status st = openChannel(side.prefix + std::to_string(k), parts[k], (*side.channels)[k], &(*side.opened)[k]);
      if (!st) return st;
    }
  }
  *out = std::move(backend);
  return Status::ok();
}

Status FinnZynqBackend::waitDone(const Channel& channel, int64_t deadlineMs) const {
  int spins = 0;
  while (!channel.dma.done()) {
    if (++spins > 1000) {
      timespec pause{0, 20000};
      nanosleep(&pause, nullptr);
      if (monotonicMs() > deadlineMs) {
        return Status::error("output DMA " + channel.name + " did not signal ap_done within " +
                             std::to_string(config_.doneTimeoutMs) + " ms");
      }
    }
  }
  return Status::ok();
}

Status FinnZynqBackend::run(const uint8_t* input, uint8_t* output) {
  // The frame holds the tensors one after another, each densely packed (docs/protocol.md#multi-tensor-frames).
  for (Channel& channel : inputs_) {
    const TensorSpec& spec = channel.spec;
    Status st = FinnPacking::denseToFinn(input, spec.numElements(), spec.dtype().bits(), channel.config.wordElems,
                                         channel.buffer.data());
    if (!st) return st.withContext(channel.name);
    input += spec.packedBytes();
  }
  for (const Channel& channel : outputs_) {
    if (!channel.dma.idle()) {
      return Status::error("output DMA " + channel.name + " is not idle (ap_idle clear) before the frame");
    }
  }
  // Outputs first, so they are ready to drain the dataflow pipeline before the inputs start it.
  for (Channel& channel : outputs_) channel.dma.start(channel.config.phys, 1);
  for (Channel& channel : inputs_) channel.dma.start(channel.config.phys, 1);
  const int64_t deadline = monotonicMs() + config_.doneTimeoutMs;
  for (const Channel& channel : outputs_) {
    Status st = waitDone(channel, deadline);
    if (!st) return st;
  }
  __sync_synchronize();
  for (const Channel& channel : outputs_) {
    const TensorSpec& spec = channel.spec;
    Status st = FinnPacking::finnToDense(channel.buffer.data(), spec.numElements(), spec.dtype().bits(),
                                         channel.config.wordElems, output);
    if (!st) return st.withContext(channel.name);
    output += spec.packedBytes();
  }
  return Status::ok();
}

}  // namespace finnsplit
