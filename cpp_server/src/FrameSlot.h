// FrameSlot: one frame in flight between pipeline stages — its sequence number and a buffer from
// a BufferPool. Plain data, copied through the fixed-size queues (no allocation per frame).
// Thread safety: a value type; the buffer belongs to whichever stage holds the slot.
#pragma once

#include <cstdint>

#include "BoundedQueue.h"

namespace finnsplit {

struct FrameSlot {
  uint64_t seq = 0;
  uint8_t* data = nullptr;
};

using FrameQueue = BoundedQueue<FrameSlot>;

}  // namespace finnsplit
