#include "BufferPool.h"

#include <cstring>

namespace finnsplit {
namespace {

// Buffers start on cache-line boundaries so kernels and DMA copies see aligned data.
constexpr size_t kBufferAlign = 64;

size_t roundUp(size_t n) { return (n + kBufferAlign - 1) / kBufferAlign * kBufferAlign; }

}  // namespace

BufferPool::BufferPool(size_t count, size_t size) : free_(count) {
  const size_t stride = roundUp(size ? size : 1);
  storage_.reset(new uint8_t[stride * count + kBufferAlign]);
  uintptr_t base = reinterpret_cast<uintptr_t>(storage_.get());
  uint8_t* first = storage_.get() + (roundUp(base) - base);
  std::memset(first, 0, stride * count);  // touch the pages now, not on the first frame
  for (size_t i = 0; i < count; ++i) free_.push(first + i * stride);
}

uint8_t* BufferPool::acquire() {
  uint8_t* buffer = nullptr;
  return free_.pop(&buffer) ? buffer : nullptr;
}

void BufferPool::release(uint8_t* buffer) {
  if (buffer) free_.push(buffer);
}

}  // namespace finnsplit
