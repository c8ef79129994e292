// BufferPool: `count` buffers of `size` bytes allocated once at start-up, handed out and returned
// per frame, so the data path allocates nothing per frame and memory stays bounded: when every
// buffer is in use, acquire() blocks and the receiving stage stops reading its socket.
// Thread safety: every method is thread safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "BoundedQueue.h"

namespace finnsplit {

class BufferPool {
 public:
  BufferPool(size_t count, size_t size);
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Blocks until a buffer is free; nullptr after close().
  uint8_t* acquire();
  void release(uint8_t* buffer);
  // Wakes every waiter with nullptr (used when the server aborts instead of draining).
  void close() { free_.close(); }

  size_t available() const { return free_.size(); }

 private:
  std::unique_ptr<uint8_t[]> storage_;
  BoundedQueue<uint8_t*> free_;
};

}  // namespace finnsplit
