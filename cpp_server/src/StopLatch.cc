#include "StopLatch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace finnsplit {

StopLatch::StopLatch() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC | O_NONBLOCK) == 0) {
    readEnd_.reset(ends[0]);
    writeEnd_.reset(ends[1]);
  }
}

void StopLatch::trigger() {
  if (triggered_.exchange(true, std::memory_order_acq_rel)) return;
  if (!writeEnd_.valid()) return;
  const char byte = 1;
  ssize_t written;
  do {
    written = ::write(writeEnd_.get(), &byte, 1);
  } while (written < 0 && errno == EINTR);
}

}  // namespace finnsplit
