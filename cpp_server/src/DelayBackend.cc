#include "DelayBackend.h"

#include <sys/prctl.h>
#include <time.h>

#include <cerrno>
#include <cstring>

namespace finnsplit {

Status DelayBackend::run(const uint8_t* input, uint8_t* output) {
  if (!slackSet_) {
    // The default 50 us timer slack would lengthen every simulated frame; this is the compute thread.
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    slackSet_ = true;
  }
  timespec deadline{};
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  int64_t ns = deadline.tv_nsec + delayUs_ * 1000;
  deadline.tv_sec += static_cast<time_t>(ns / 1000000000);
  deadline.tv_nsec = static_cast<long>(ns % 1000000000);

  const size_t inBytes = in_.packedBytes();
  const size_t outBytes = out_.packedBytes();
  for (size_t done = 0; done < outBytes;) {
    size_t take = std::min(inBytes, outBytes - done);
    std::memcpy(output + done, input, take);
    done += take;
  }
  int usedBits = static_cast<int>((out_.numElements() * out_.dtype().bits()) % 8);
  if (usedBits != 0 && outBytes > 0) output[outBytes - 1] &= static_cast<uint8_t>((1u << usedBits) - 1);

  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr) == EINTR) {
  }
  return Status::ok();
}

}  // namespace finnsplit
