// FinnZynqBackend: the `finn-zynq` accelerator — the real board. The bitstream is already loaded
// (by the board agent); this drives FINN's IODMAs through their registers (UIO or /dev/mem) with
// DMA buffers from u-dma-buf, converting between the dense wire format and FINN's folded, per-word
// padded packing (FinnPacking). FINN's InsertIODMA makes one IODMA per graph input and output, so a
// boundary of several tensors (a cut inside a residual block) has one channel — IODMA, buffer and
// word width — per tensor, in boundary order: idma0, idma1, ... / odma0, odma1, ...
// (docs/finn.md#multi-tensor-boundaries). Per frame: pack each input tensor into its buffer, check
// every output DMA is idle, start every output DMA, then every input DMA, poll each output DMA's
// ap_done, unpack each output buffer into the frame.
// Thread safety: as Accelerator (run() from one thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "Accelerator.h"
#include "Iodma.h"
#include "MappedRegion.h"

namespace finnsplit {

// One tensor of a boundary: the IODMA moving it and the buffer it moves it through.
struct FinnZynqChannel {
  std::string regs;          // "PATH" or "PATH@OFFSET": /dev/uio0, /dev/mem@0x40000000, a file
  std::string buffer;        // "/dev/udmabuf0" or a file; physical address from sysfs unless given
  uint64_t phys = 0;         // 0: read /sys/class/u-dma-buf/<name>/phys_addr
  int64_t wordElems = 1;     // FINN's innermost folded dim (ishape_folded[-1] / oshape_folded[-1]: SIMD/PE)
};

struct FinnZynqConfig {
  TensorSpec in;                          // what the first layers read (dense on the wire; composite: several)
  TensorSpec out;                         // what the last layers write
  std::vector<FinnZynqChannel> inputs;    // one per part of `in`, in boundary order (idma0, idma1, ...)
  std::vector<FinnZynqChannel> outputs;   // one per part of `out` (odma0, odma1, ...)
  int doneTimeoutMs = 2000;               // a frame that takes longer is reported as an error
};

class FinnZynqBackend : public Accelerator {
 public:
  // Fails (naming the DMA) if the channels do not match the tensors or a device cannot be mapped.
  static Status create(const FinnZynqConfig& config, std::unique_ptr<Accelerator>* out);

  const char* name() const override { return "finn-zynq"; }
  const TensorSpec& inputSpec() const override { return config_.in; }
  const TensorSpec& outputSpec() const override { return config_.out; }
  Status run(const uint8_t* input, uint8_t* output) override;

 private:
  // A channel once mapped: its tensor, registers and buffer.
  struct Channel {
    std::string name;  // "idma0", "odma1": what errors call it
    TensorSpec spec;
    FinnZynqChannel config;
    Iodma dma;
    MappedRegion buffer;
  };
  static Status openChannel(const std::string& name, const TensorSpec& spec, const FinnZynqChannel& config,
                            Channel* out);
  Status waitDone(const Channel& channel, int64_t deadlineMs) const;

  FinnZynqConfig config_;
  std::vector<Channel> inputs_;
  std::vector<Channel> outputs_;
};

}  // namespace finnsplit
