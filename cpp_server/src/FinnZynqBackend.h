// FinnZynqBackend: the `finn-zynq` accelerator — the real board. The bitstream is already loaded
// (by the board agent); this drives FINN's input and output IODMAs through their registers (UIO or
// /dev/mem) with DMA buffers from u-dma-buf, converting between the dense wire format and FINN's
// folded, per-word padded packing (FinnPacking). Per frame: pack into the input buffer, check the
// output DMA is idle, start the output DMA then the input DMA, poll the output DMA's ap_done,
// unpack the output buffer.
// Thread safety: as Accelerator (run() from one thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "Accelerator.h"
#include "Iodma.h"
#include "MappedRegion.h"

namespace finnsplit {

struct FinnZynqConfig {
  TensorSpec in;                  // what the first layer reads (dense on the wire)
  TensorSpec out;                 // what the last layer writes
  int64_t inWordElems = 1;        // FINN's innermost folded input dim (ishape_folded[-1]: SIMD/PE)
  int64_t outWordElems = 1;       // same for the output (oshape_folded[-1])
  std::string idmaRegs;           // "PATH" or "PATH@OFFSET": /dev/uio0, /dev/mem@0x40000000, a file
  std::string odmaRegs;
  std::string inBuffer;           // "/dev/udmabuf0" or a file; physical address from sysfs unless given
  std::string outBuffer;
  uint64_t inPhys = 0;            // 0: read /sys/class/u-dma-buf/<name>/phys_addr
  uint64_t outPhys = 0;
  int doneTimeoutMs = 2000;       // a frame that takes longer is reported as an error
};

class FinnZynqBackend : public Accelerator {
 public:
  static Status create(const FinnZynqConfig& config, std::unique_ptr<Accelerator>* out);

  const char* name() const override { return "finn-zynq"; }
  const TensorSpec& inputSpec() const override { return config_.in; }
  const TensorSpec& outputSpec() const override { return config_.out; }
  Status run(const uint8_t* input, uint8_t* output) override;

 private:
  FinnZynqConfig config_;
  Iodma idma_;
  Iodma odma_;
  MappedRegion inBuffer_;
  MappedRegion outBuffer_;
};

}  // namespace finnsplit
