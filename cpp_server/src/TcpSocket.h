// TcpSocket: a TCP socket in the style of redis anet.c: opened non-blocking and close-on-exec,
// every blocking wait is a poll() that also watches a StopLatch, EINTR is retried, and I/O reports
// its outcome as an IoResult instead of aborting.
// Thread safety: not thread safe; one thread uses a socket at a time (the Fd is owned).
#pragma once

#include <sys/uio.h>

#include <string>

#include "Fd.h"
#include "Status.h"
#include "StopLatch.h"

namespace finnsplit {

enum class IoCode {
  kOk,
  kEof,        // orderly close before the first byte
  kTruncated,  // orderly close after some but not all bytes
  kTimeout,    // no progress within the idle timeout
  kStopped,    // the StopLatch was triggered
  kError,      // a socket error (reset, ...); see message
};

struct IoResult {
  IoCode code = IoCode::kOk;
  std::string message;
  bool ok() const { return code == IoCode::kOk; }
};

class TcpSocket {
 public:
  TcpSocket() = default;
  explicit TcpSocket(Fd fd) : fd_(std::move(fd)) {}

  // Listens on host:port (port 0 picks an ephemeral port; see localPort()), backlog SOMAXCONN.
  static Status listenOn(const std::string& host, int port, TcpSocket* out);
  // Connects within timeoutMs; kStopped if `stop` triggers first.
  static IoResult connectTo(const std::string& host, int port, int timeoutMs, const StopLatch* stop, TcpSocket* out);
  // Waits up to timeoutMs (-1: forever) for a connection; kTimeout if none arrived.
  IoResult acceptOne(int timeoutMs, const StopLatch* stop, TcpSocket* out);

  // Reads exactly `length` bytes within timeoutMs in total (-1: no limit), however the bytes trickle
  // in; `stop` may be null (then only the timeout or the peer ends the wait).
  IoResult readFull(void* data, size_t length, int timeoutMs, const StopLatch* stop);
  // Writes all of iov[0..count) (count <= 4) within timeoutMs in total (-1: no limit), never raising SIGPIPE.
  IoResult writeAll(const iovec* iov, int count, int timeoutMs, const StopLatch* stop);
  // TCP keepalive and TCP_USER_TIMEOUT: a peer that vanished (power loss, cable) is an error after
  // about deadPeerMs, whether the connection is idle or has data in flight (0: off).
  void enableKeepalive(int deadPeerMs);
  // True if the peer has closed or reset the connection or sent data, checked without blocking or
  // consuming: a next hop sends nothing after the handshake except an ERROR before it closes.
  bool peerClosed();

  int localPort() const;
  std::string peerName() const;
  void shutdownReads();
  void shutdownWrites();
  // Reads whatever is buffered (up to `length`) without waiting; returns the byte count (0 if none).
  size_t readAvailable(void* data, size_t length);
  void close() { fd_.reset(); }
  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }

 private:
  Fd fd_;
};

}  // namespace finnsplit
