// Iodma: one FINN IODMA (an HLS block with an s_axilite control interface) driven through its
// registers, as FINN's PYNQ driver does (driver_base.py): 0x10/0x14 buffer address low/high,
// 0x1C numReps (frames), 0x00 control: bit0 ap_start, bit1 ap_done, bit2 ap_idle.
// Thread safety: not thread safe; the compute thread owns the IODMAs.
#pragma once

#include <cstdint>

#include "MappedRegion.h"

namespace finnsplit {

class Iodma {
 public:
  static constexpr uint32_t kCtrl = 0x00;
  static constexpr uint32_t kAddrLo = 0x10;
  static constexpr uint32_t kAddrHi = 0x14;
  static constexpr uint32_t kNumReps = 0x1C;
  static constexpr uint32_t kApStart = 1u << 0;
  static constexpr uint32_t kApDone = 1u << 1;
  static constexpr uint32_t kApIdle = 1u << 2;
  static constexpr size_t kRegisterBytes = 0x20;

  Iodma() = default;
  explicit Iodma(MappedRegion registers) : regs_(std::move(registers)) {}

  uint32_t read(uint32_t offset) const;
  void write(uint32_t offset, uint32_t value);
  // Writes buffer address and frame count, then ap_start (which the hardware self-clears).
  void start(uint64_t physAddr, uint32_t numReps);
  bool idle() const { return (read(kCtrl) & kApIdle) != 0; }
  bool done() const { return (read(kCtrl) & kApDone) != 0; }

 private:
  MappedRegion regs_;
};

}  // namespace finnsplit
