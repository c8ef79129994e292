// Server: one board's data plane. Wires the pipeline
//   Receiver -> input queue -> ComputeStage (Accelerator) -> output queue -> Sender
// over two preallocated BufferPools (no allocation per frame; when buffers run out the receiver
// stops reading its socket, which is TCP backpressure to the previous hop), plus the stats
// reporter. drain() is the SIGTERM path: stop accepting, finish and deliver the frames in flight
// (bounded by drainTimeoutMs), then stop.
// Thread safety: start() and drain() are called from the main thread, once each.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "Accelerator.h"
#include "BufferPool.h"
#include "ComputeStage.h"
#include "FrameSlot.h"
#include "LinkAuth.h"
#include "Receiver.h"
#include "Sender.h"
#include "Stats.h"
#include "StatsReporter.h"

namespace finnsplit {

struct ServerConfig {
  std::string listenHost = "0.0.0.0";
  int listenPort = 0;             // 0: an ephemeral port, announced in the "listening" line
  std::vector<NextHop> next;      // the next hop, or the replicas of the next stage (fan-out)
  bool anyOrder = false;          // a replicated stage upstream merges into this one: forward in any order
  std::string node = "server";    // this server's name in handshakes, logs and stats
  int queueDepth = 4;             // frames each queue holds; each pool has queueDepth + 2 buffers
  int ioTimeoutMs = 10000;        // a stall inside a frame longer than this drops the connection
  int connectTimeoutMs = 2000;
  int drainTimeoutMs = 10000;     // on SIGTERM, frames not delivered by then are dropped
  int maxUpstreams = 4;
  int maxHandshakes = 16;         // connections in their handshake at once; a new one evicts the oldest
  int handshakeTimeoutMs = 3000;  // the whole handshake of an upstream
  int deadPeerMs = 10000;         // TCP keepalive + TCP_USER_TIMEOUT on every link
  const LinkKey* key = nullptr;   // the deployment's link key (--auth-key-file); null: unauthenticated
  std::string statsTarget = "stdout";
  int statsIntervalMs = 1000;
};

class Server {
 public:
  Server(ServerConfig config, std::unique_ptr<Accelerator> accelerator);
  ~Server();

  // Binds the listening socket and the stats target (before privileges are dropped).
  Status bind();
  // Binds (unless bind() ran), prints the "listening" JSON line on stdout, starts every stage.
  Status start();
  int port() const { return receiver_->port(); }
  void drain();
  const Stats& stats() const { return stats_; }

 private:
  Gauges gauges() const;
  std::string nextText() const;  // "host:port[,host:port...]"

  ServerConfig config_;
  std::unique_ptr<Accelerator> accelerator_;
  Stats stats_;
  BufferPool inPool_;
  BufferPool outPool_;
  FrameQueue inQueue_;
  FrameQueue outQueue_;
  std::unique_ptr<Receiver> receiver_;
  std::unique_ptr<ComputeStage> compute_;
  std::unique_ptr<Sender> sender_;
  std::unique_ptr<StatsReporter> reporter_;
  std::atomic<bool> draining_{false};
  bool drained_ = false;
  bool bound_ = false;
};

}  // namespace finnsplit
