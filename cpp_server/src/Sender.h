// Sender: the send stage. Keeps a connection to each next hop (the next board, the replicas of a
// replicated next stage, or the client's result port), running the sending side of the
// handshake, and writes result frames in order. With several next hops it fans out: each frame
// goes to exactly one hop, round robin over the connected hops, skipping one whose socket is full
// (a backpressured replica) while another can take the frame, and skipping hops that are down
// (docs/protocol.md#fan-out-and-merge). It connects at start-up (so a mis-wired chain is reported
// before any frame flows), notices a closed next hop while idle, and reconnects with capped
// exponential backoff; the frame being written when a connection fails is written again, on
// another hop or on the next connection. On an ordered link (the default), a frame whose sequence
// number does not exceed the last one sent to that hop (a new client run) goes out on a new
// connection, so the next hop sees increasing numbers on every connection; an `anyOrder` sender
// (it merges replicas) says order=any in its HELLO instead.
// Thread safety: start/abort/join may be called from any one owning thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "BufferPool.h"
#include "Connection.h"
#include "FrameSlot.h"
#include "LinkAuth.h"
#include "Stats.h"
#include "StopLatch.h"
#include "TensorSpec.h"

namespace finnsplit {

struct NextHop {
  std::string host;
  int port = 0;
  std::string text() const { return host + ":" + std::to_string(port); }
};

struct SenderConfig {
  std::vector<NextHop> hops;     // one, or the replicas of the next stage (fan-out)
  std::string node;
  TensorSpec spec;               // what this server sends
  bool anyOrder = false;         // frames leave in any sequence order (HELLO order=any)
  int ioTimeoutMs = 10000;
  int connectTimeoutMs = 2000;
  int quickConnectTimeoutMs = 100;  // reconnecting one hop while another is up: do not stall the stream
  int retryMinMs = 50;
  int retryMaxMs = 2000;
  int deadPeerMs = 10000;        // keepalive: a vanished next hop is noticed after about this
  const LinkKey* key = nullptr;  // null: the link is not authenticated
};

class Sender {
 public:
  Sender(SenderConfig config, FrameQueue* queue, BufferPool* pool, Stats* stats);
  ~Sender();

  void start();
  // Gives up: frames not yet delivered are dropped (counted) and the thread ends.
  void abort() { abort_.trigger(); }
  // Returns when the queue is closed and drained (or after abort()).
  void join();
  bool finished() const { return finished_.load(); }

 private:
  // One next hop's connection and its reconnect state (used by the sender thread only).
  struct Link {
    NextHop hop;
    std::unique_ptr<Connection> conn;
    bool everConnected = false;
    bool haveSent = false;
    uint64_t lastSentSeq = 0;
    int retryMs = 0;
    int64_t retryAtMs = 0;  // no connection attempt before this
    int64_t lastFailureLogMs = -1000000;
    std::string lastFailure;
  };

  void loop();
  // Notices closed hops and connects the ones due (quickly while another hop is up).
  void refresh();
  bool connect(Link* link, int timeoutMs);
  void disconnect(Link* link);
  int connectedCount() const;
  // The hop for the next frame, waiting (bounded) for one to become connected or writable; null
  // if none is ready yet (the caller refreshes and asks again).
  Link* pick();
  void deliver(const FrameSlot& frame);
  void waitMs(int ms);
  void updateGauge();

  SenderConfig config_;
  FrameQueue* queue_;
  BufferPool* pool_;
  Stats* stats_;
  StopLatch abort_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
  std::vector<Link> links_;
  size_t nextLink_ = 0;  // round robin position
};

}  // namespace finnsplit
