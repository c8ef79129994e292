// StopLatch: a one-way flag that, once triggered, stays set; its fd() becomes readable so threads
// blocked in poll() on a socket wake up as well.
// Thread safety: every method is thread safe.
#pragma once

#include <atomic>

#include "Fd.h"
#include "Status.h"

namespace finnsplit {

class StopLatch {
 public:
  StopLatch();
  StopLatch(const StopLatch&) = delete;
  StopLatch& operator=(const StopLatch&) = delete;

  void trigger();
  bool triggered() const { return triggered_.load(std::memory_order_acquire); }
  // Readable (POLLIN) once triggered; -1 if the pipe could not be created (then only triggered() works).
  int fd() const { return readEnd_.get(); }

 private:
  std::atomic<bool> triggered_{false};
  Fd readEnd_;
  Fd writeEnd_;
};

}  // namespace finnsplit
