// Receiver: the receive stage. Listens for the previous hop (the previous board or the client),
// runs the receiving side of the handshake, then reads TENSOR frames straight into pooled buffers
// and queues them for the compute stage. Each connection has its own thread and slot:
//   - at most maxHandshakes connections may be in their handshake (bounded by handshakeTimeoutMs in
//     total); a new one beyond that evicts the oldest, so a flood of strangers cannot lock out the
//     real upstream, and an upstream past its handshake is never evicted by one that is not;
//   - at most maxUpstreams past the handshake; with a link key a newly authenticated upstream
//     evicts the least recently active one (a dead predecessor), without one it is refused (busy);
//   - TCP keepalive and TCP_USER_TIMEOUT (deadPeerMs) free the slot of an upstream that vanished.
// Several upstreams (the replicas of a replicated stage) feed one input queue in arrival order.
// A malformed, oversized, truncated, unauthenticated or out-of-order frame, a wrong spec or a reset
// drops that connection only.
// Thread safety: listen/start/stopAndJoin are called from the owning (main) thread; the slot list
// is shared by the acceptor and the connection threads under slotsMu_.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "BufferPool.h"
#include "Connection.h"
#include "FrameSlot.h"
#include "LinkAuth.h"
#include "Stats.h"
#include "StopLatch.h"
#include "TcpSocket.h"
#include "TensorSpec.h"

namespace finnsplit {

struct ReceiverConfig {
  std::string host = "0.0.0.0";
  int port = 0;
  std::string node;
  TensorSpec expected;
  int ioTimeoutMs = 10000;        // each frame, in total once it started
  int handshakeTimeoutMs = 3000;  // the whole handshake
  int maxUpstreams = 4;
  int maxHandshakes = 16;
  int deadPeerMs = 10000;         // keepalive: a vanished upstream's slot is freed after about this
  const LinkKey* key = nullptr;   // null: links are not authenticated
};

class Receiver {
 public:
  Receiver(ReceiverConfig config, BufferPool* pool, FrameQueue* queue, Stats* stats);
  ~Receiver();

  Status listen();
  int port() const { return port_; }
  void start();
  // Stops accepting; each connection finishes the frame it is reading (bounded by the I/O
  // timeout) and closes. Returns when every connection thread has ended.
  void stopAndJoin();

 private:
  // One connection: its thread, and what the acceptor needs to evict it.
  struct Slot {
    std::thread thread;
    std::mutex mu;
    int fd = -1;                       // while the connection's socket is open (guarded by mu)
    bool evicted = false;              // guarded by mu
    std::atomic<bool> admitted{false};  // past the handshake
    std::atomic<bool> finished{false};
    std::atomic<int64_t> lastActiveMs{0};
    int64_t acceptedMs = 0;
    std::string peer;
    // Shuts the socket down so the connection's thread wakes up and ends; safe at any time.
    void evict();
    void detach();
    bool wasEvicted();
  };
  using SlotPtr = std::shared_ptr<Slot>;

  void acceptLoop();
  void reapFinished(bool all);
  // Makes room for a new connection (evicting the oldest handshake if needed); false: refuse it.
  bool makeRoomForHandshake();
  void serve(TcpSocket socket, SlotPtr slot);
  // Past the handshake: takes an upstream slot, evicting a stale upstream (with a key) if all are
  // taken; false if the connection must be refused as busy.
  bool admit(const SlotPtr& slot, const std::string& peerNode);
  // Reads TENSOR frames until the connection ends; their sequence numbers must increase unless the
  // peer said order=any (it merges replicated stages, docs/protocol.md#fan-out-and-merge).
  void readFrames(Connection* conn, const std::string& peerNode, Slot* slot, bool anyOrder);
  // Counts and logs a frame that ends the connection; a malformed one is answered with ERROR.
  void drop(Connection* conn, const ReadOutcome& why, Slot* slot);

  ReceiverConfig config_;
  BufferPool* pool_;
  FrameQueue* queue_;
  Stats* stats_;
  TcpSocket listener_;
  int port_ = 0;
  StopLatch stop_;
  std::thread acceptor_;
  std::mutex slotsMu_;
  std::list<SlotPtr> slots_;  // threads are joined by the acceptor only (reapFinished), then by stopAndJoin
};

}  // namespace finnsplit
