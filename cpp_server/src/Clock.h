// Clock: CLOCK_MONOTONIC readings for stage timings and deadlines.
// Thread safety: pure functions.
#pragma once

#include <time.h>

#include <cstdint>

namespace finnsplit {

inline int64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline int64_t monotonicMs() { return monotonicNs() / 1000000; }

}  // namespace finnsplit
