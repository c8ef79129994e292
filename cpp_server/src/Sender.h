// Sender: the send stage. Keeps a connection to the next hop (the next board, or the client's
// result port), running the sending side of the handshake, and writes result frames in order.
// It connects at start-up (so a mis-wired chain is reported before any frame flows), notices a
// closed next hop while idle, and reconnects with capped exponential backoff; the frame being
// written when a connection fails is written again on the next connection. A frame whose sequence
// number does not exceed the last one sent (a new client run) goes out on a new connection, so the
// next hop sees increasing numbers on every connection.
// Thread safety: start/abort/join may be called from any one owning thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "BufferPool.h"
#include "Connection.h"
#include "FrameSlot.h"
#include "LinkAuth.h"
#include "Stats.h"
#include "StopLatch.h"
#include "TensorSpec.h"

namespace finnsplit {

struct SenderConfig {
  std::string host;
  int port = 0;
  std::string node;
  TensorSpec spec;            // what this server sends
  int ioTimeoutMs = 10000;
  int connectTimeoutMs = 2000;
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
  void loop();
  bool ensureConnected();
  void deliver(const FrameSlot& frame);
  void backoff();

  SenderConfig config_;
  FrameQueue* queue_;
  BufferPool* pool_;
  Stats* stats_;
  StopLatch abort_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
  std::unique_ptr<Connection> conn_;
  bool everConnected_ = false;
  bool haveSent_ = false;
  uint64_t lastSentSeq_ = 0;
  int retryMs_ = 0;
  int64_t lastFailureLogMs_ = -1000000;
  std::string lastFailure_;
};

}  // namespace finnsplit
