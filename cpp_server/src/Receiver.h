// Receiver: the receive stage. Listens for the previous hop (the previous board or the client),
// runs the receiving side of the handshake, then reads TENSOR frames straight into pooled buffers
// and queues them for the compute stage. Each upstream connection has its own thread (at most
// maxUpstreams; a reconnecting upstream may briefly overlap its dead predecessor). A malformed,
// oversized, truncated or out-of-order frame, a wrong spec or a reset drops that connection only.
// Thread safety: listen/start/stopAndJoin are called from the owning (main) thread.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "BufferPool.h"
#include "Connection.h"
#include "FrameSlot.h"
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
  int ioTimeoutMs = 10000;
  int maxUpstreams = 4;
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
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };

  void acceptLoop();
  void reapFinished(bool all);
  void serve(TcpSocket socket);
  // Reads TENSOR frames until the connection ends.
  void readFrames(Connection* conn, const std::string& peerNode);
  // Counts and logs a frame that ends the connection; a malformed one is answered with ERROR.
  void drop(Connection* conn, const ReadOutcome& why);

  ReceiverConfig config_;
  BufferPool* pool_;
  FrameQueue* queue_;
  Stats* stats_;
  TcpSocket listener_;
  int port_ = 0;
  StopLatch stop_;
  std::thread acceptor_;
  std::list<Worker> workers_;  // touched only by the acceptor thread, then by stopAndJoin after it ends
};

}  // namespace finnsplit
