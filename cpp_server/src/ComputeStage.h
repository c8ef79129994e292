// ComputeStage: the accelerator stage. Takes frames from the input queue in order, runs the
// accelerator into a buffer from the output pool, returns the input buffer, queues the result.
// One thread, because the FPGA (or its emulation) is one device; order is therefore preserved.
// When the input queue is closed and drained, it closes the output queue and ends.
// Thread safety: start/join from the owning thread.
#pragma once

#include <thread>

#include "Accelerator.h"
#include "BufferPool.h"
#include "FrameSlot.h"
#include "Stats.h"

namespace finnsplit {

class ComputeStage {
 public:
  ComputeStage(Accelerator* accelerator, FrameQueue* in, BufferPool* inPool, FrameQueue* out, BufferPool* outPool,
               Stats* stats)
      : accelerator_(accelerator), in_(in), inPool_(inPool), out_(out), outPool_(outPool), stats_(stats) {}
  ~ComputeStage() { join(); }

  void start() { thread_ = std::thread(&ComputeStage::loop, this); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop();

  Accelerator* accelerator_;
  FrameQueue* in_;
  BufferPool* inPool_;
  FrameQueue* out_;
  BufferPool* outPool_;
  Stats* stats_;
  std::thread thread_;
};

}  // namespace finnsplit
