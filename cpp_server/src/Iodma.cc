#include "Iodma.h"

namespace finnsplit {

uint32_t Iodma::read(uint32_t offset) const {
  return *reinterpret_cast<volatile const uint32_t*>(regs_.data() + offset);
}

void Iodma::write(uint32_t offset, uint32_t value) {
  *reinterpret_cast<volatile uint32_t*>(regs_.data() + offset) = value;
}

void Iodma::start(uint64_t physAddr, uint32_t numReps) {
  write(kAddrLo, static_cast<uint32_t>(physAddr));
  write(kAddrHi, static_cast<uint32_t>(physAddr >> 32));
  write(kNumReps, numReps);
  // The buffer contents and the registers above must be visible before the engine starts.
  __sync_synchronize();
  write(kCtrl, kApStart);
}

}  // namespace finnsplit
