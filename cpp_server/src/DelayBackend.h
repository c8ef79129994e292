// DelayBackend: the `delay` accelerator for pipeline benchmarks — takes a fixed time per frame, as
// an FPGA that finishes after a fixed number of cycles would, and writes a deterministic output of
// the right size: the input bytes repeated cyclically, the padding bits of the last byte cleared.
// The wait is an absolute-deadline sleep that wakes early by the wake-up latency measured so far
// (tens of µs in a VM, a few % of a frame) and spins the rest, so the frame time is the delay, not
// the delay plus the timer's latency, at the cost of a little CPU.
// Thread safety: as Accelerator (run() from one thread).
#pragma once

#include <cstdint>
#include <memory>

#include "Accelerator.h"

namespace finnsplit {

class DelayBackend : public Accelerator {
 public:
  DelayBackend(TensorSpec in, TensorSpec out, int64_t delayUs) : in_(std::move(in)), out_(std::move(out)), delayUs_(delayUs) {}

  const char* name() const override { return "delay"; }
  const TensorSpec& inputSpec() const override { return in_; }
  const TensorSpec& outputSpec() const override { return out_; }
  Status run(const uint8_t* input, uint8_t* output) override;

 private:
  TensorSpec in_;
  TensorSpec out_;
  int64_t delayUs_;
  bool slackSet_ = false;
  int64_t wakeLatencyNs_ = 0;  // running mean of how late a sleep wakes, learnt per frame
};

}  // namespace finnsplit
