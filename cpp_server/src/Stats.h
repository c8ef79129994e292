// Stats: the server's counters and stage timings, read by the board agent as JSON lines
// (StatsReporter; fields documented in docs/protocol.md, "Stats").
// Thread safety: every counter is an atomic; any thread may add or read.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace finnsplit {

// One pipeline stage's time: total nanoseconds and the number of frames it covers.
struct StageTime {
  std::atomic<int64_t> ns{0};
  std::atomic<int64_t> frames{0};
  void add(int64_t elapsedNs) {
    ns.fetch_add(elapsedNs, std::memory_order_relaxed);
    frames.fetch_add(1, std::memory_order_relaxed);
  }
};

// Instantaneous values sampled when a line is written.
struct Gauges {
  size_t inQueue = 0, inCapacity = 0, outQueue = 0, outCapacity = 0;
  size_t freeInBuffers = 0, freeOutBuffers = 0;
  bool draining = false;
};

class Stats {
 public:
  std::atomic<int64_t> framesIn{0};        // TENSOR frames accepted into the pipeline
  std::atomic<int64_t> framesComputed{0};  // frames the accelerator finished
  std::atomic<int64_t> framesOut{0};       // frames written to the next hop
  std::atomic<int64_t> framesDropped{0};   // frames lost to accelerator errors or a failed drain
  std::atomic<int64_t> badFrames{0};       // malformed, oversized or checksum-failing frames
  std::atomic<int64_t> specMismatches{0};  // handshakes refused for a wrong tensor spec
  std::atomic<int64_t> disconnects{0};     // upstream connections lost mid-frame or reset
  std::atomic<int64_t> acceleratorErrors{0};
  std::atomic<int64_t> sendErrors{0};      // downstream writes or handshakes that failed
  std::atomic<int64_t> busyRejects{0};     // connections refused over --max-upstreams
  std::atomic<int64_t> authFailures{0};    // handshakes of peers without this deployment's link key
  std::atomic<int64_t> evictions{0};       // connections closed to make room (oldest handshake, stale upstream)
  std::atomic<int64_t> reconnects{0};      // downstream connections made after the first
  std::atomic<int64_t> upstreams{0};       // upstream connections past the handshake
  std::atomic<bool> downstreamConnected{false};  // at least one next hop connected
  std::atomic<int64_t> downstreams{0};          // next hops connected (the replicas of a fanned-out stage)
  StageTime recv;      // header read to payload verified (excludes idle gaps between frames)
  StageTime recvWait;  // waiting for a free input buffer (backpressure from compute)
  StageTime compute;   // accelerator run
  StageTime send;      // writing a frame downstream (includes downstream backpressure)

  // One JSON object (no newline). Means are over frames since the previous call (`previous`
  // holds the totals then and is updated).
  std::string toJson(const std::string& node, double uptimeSeconds, const Gauges& gauges, int64_t previous[8]) const;
};

}  // namespace finnsplit
