// MappedRegion: an mmap'd window of a file or device — a UIO register block (/dev/uioN), a
// physical range of /dev/mem, a u-dma-buf buffer (/dev/udmabufN), or, in tests, a plain file
// standing in for them. Unmapped on destruction.
// Thread safety: not thread safe to move or destroy; the mapped bytes are shared memory and
// callers order their own accesses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "Status.h"

namespace finnsplit {

class MappedRegion {
 public:
  MappedRegion() = default;
  ~MappedRegion();
  MappedRegion(MappedRegion&& other) noexcept { *this = std::move(other); }
  MappedRegion& operator=(MappedRegion&& other) noexcept;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  // Maps `size` bytes of `path` starting at byte `offset` (any alignment). `uncached` opens with
  // O_SYNC, which u-dma-buf and /dev/mem turn into an uncached mapping, so the CPU's writes reach
  // DRAM before the DMA engine is started.
  static Status map(const std::string& path, uint64_t offset, size_t size, bool uncached, MappedRegion* out);

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* base_ = nullptr;
  size_t mappedLength_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace finnsplit
