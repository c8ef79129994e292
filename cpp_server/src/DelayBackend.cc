#include "DelayBackend.h"

#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "Clock.h"

namespace finnsplit {

Status DelayBackend::run(const uint8_t* input, uint8_t* output) {
  if (!slackSet_) {
    // The default 50 us timer slack would lengthen every simulated frame; this is the compute thread.
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    slackSet_ = true;
  }
  const int64_t deadlineNs = monotonicNs() + delayUs_ * 1000;

  const size_t inBytes = in_.packedBytes();
  const size_t outBytes = out_.packedBytes();
  for (size_t done = 0; done < outBytes;) {
    size_t take = std::min(inBytes, outBytes - done);
    std::memcpy(output + done, input, take);
    done += take;
  }
  const TensorSpec last = out_.parts().back();  // a composite frame ends with its last part's padding
  int usedBits = static_cast<int>((last.numElements() * last.dtype().bits()) % 8);
  if (usedBits != 0 && outBytes > 0) output[outBytes - 1] &= static_cast<uint8_t>((1u << usedBits) - 1);

  // Wake early by twice the mean lateness (plus 10 us), at most 150 us and half the delay; spin the rest.
  // Bounded: on a CPU short of time, lateness is queueing for a core, which spinning would only worsen.
  const int64_t early = std::min({2 * wakeLatencyNs_ + 10000, int64_t{150000}, delayUs_ * 500});
  const int64_t wakeNs = deadlineNs - early;
  if (wakeNs > monotonicNs()) {
    timespec wake{static_cast<time_t>(wakeNs / 1000000000), static_cast<long>(wakeNs % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, nullptr) == EINTR) {
    }
    // a preempted wake-up (milliseconds late) says little about the timer: counted as 0.2 ms at most
    const int64_t late = std::clamp<int64_t>(monotonicNs() - wakeNs, 0, 200000);
    wakeLatencyNs_ += (late - wakeLatencyNs_) / 8;
  }
  while (monotonicNs() < deadlineNs) {
  }
  return Status::ok();
}

}  // namespace finnsplit
