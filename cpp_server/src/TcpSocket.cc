#include "TcpSocket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "Clock.h"

namespace finnsplit {
namespace {

std::string errnoText(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

void setNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Waits until `fd` is ready for `events` or `stop` fires. Returns kOk, kTimeout, kStopped or kError.
IoResult waitFor(int fd, short events, int timeoutMs, const StopLatch* stop) {
  if (stop && stop->triggered()) return {IoCode::kStopped, "stopped"};
  pollfd fds[2] = {{fd, events, 0}, {stop ? stop->fd() : -1, POLLIN, 0}};
  // A StopLatch without a pipe is polled every 100 ms through triggered().
  bool pollStop = stop && stop->fd() < 0;
  int slice = pollStop && (timeoutMs < 0 || timeoutMs > 100) ? 100 : timeoutMs;
  int waited = 0;
  for (;;) {
    int n = ::poll(fds, stop && stop->fd() >= 0 ? 2 : 1, slice);
    if (n < 0) {
      if (errno == EINTR) continue;
      return {IoCode::kError, errnoText("poll", errno)};
    }
    if (stop && (stop->triggered() || (fds[1].revents & POLLIN))) return {IoCode::kStopped, "stopped"};
    if (n > 0) return {};
    waited += slice;
    if (timeoutMs >= 0 && waited >= timeoutMs) return {IoCode::kTimeout, "timed out"};
  }
}

// Milliseconds left until `deadline` (-1: none), at least 0.
int remaining(int64_t deadline) {
  if (deadline < 0) return -1;
  int64_t left = deadline - monotonicMs();
  return left > 0 ? static_cast<int>(left) : 0;
}

Status resolve(const std::string& host, int port, int flags, addrinfo** out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, out);
  if (rc != 0) return Status::error("cannot resolve " + host + ": " + ::gai_strerror(rc));
  return Status::ok();
}

std::string addressText(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

}  // namespace

Status TcpSocket::listenOn(const std::string& host, int port, TcpSocket* out) {
  addrinfo* list = nullptr;
  Status st = resolve(host, port, AI_PASSIVE, &list);
  if (!st) return st;
  std::string lastError = "no address";
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      lastError = errnoText("socket", errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      lastError = errnoText("bind", errno);
      continue;
    }
    if (::listen(fd.get(), SOMAXCONN) != 0) {
      lastError = errnoText("listen", errno);
      continue;
    }
    ::freeaddrinfo(list);
    *out = TcpSocket(std::move(fd));
    return Status::ok();
  }
  ::freeaddrinfo(list);
  return Status::error("cannot listen on " + host + ":" + std::to_string(port) + ": " + lastError);
}

IoResult TcpSocket::connectTo(const std::string& host, int port, int timeoutMs, const StopLatch* stop, TcpSocket* out) {
  addrinfo* list = nullptr;
  Status st = resolve(host, port, 0, &list);
  if (!st) return {IoCode::kError, st.message()};
  IoResult last{IoCode::kError, "no address"};
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = {IoCode::kError, errnoText("socket", errno)};
      continue;
    }
    int rc;
    do {
      rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0 && errno != EINPROGRESS) {
      last = {IoCode::kError, errnoText("connect", errno)};
      continue;
    }
    if (rc != 0) {
      IoResult waited = waitFor(fd.get(), POLLOUT, timeoutMs, stop);
      if (!waited.ok()) {
        ::freeaddrinfo(list);
        return waited;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = {IoCode::kError, errnoText("connect", err)};
        continue;
      }
    }
    setNoDelay(fd.get());
    ::freeaddrinfo(list);
    *out = TcpSocket(std::move(fd));
    return {};
  }
  ::freeaddrinfo(list);
  return last;
}

IoResult TcpSocket::acceptOne(int timeoutMs, const StopLatch* stop, TcpSocket* out) {
  for (;;) {
    int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      setNoDelay(fd);
      *out = TcpSocket(Fd(fd));
      return {};
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return {IoCode::kError, errnoText("accept", errno)};
    IoResult waited = waitFor(fd_.get(), POLLIN, timeoutMs, stop);
    if (!waited.ok()) return waited;
  }
}

IoResult TcpSocket::readFull(void* data, size_t length, int timeoutMs, const StopLatch* stop) {
  char* p = static_cast<char*>(data);
  size_t done = 0;
  const int64_t deadline = timeoutMs < 0 ? -1 : monotonicMs() + timeoutMs;
  while (done < length) {
    ssize_t n = ::recv(fd_.get(), p + done, length - done, 0);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      if (done == 0) return {IoCode::kEof, "peer closed the connection"};
      return {IoCode::kTruncated, "peer closed the connection after " + std::to_string(done) + " of " +
                                      std::to_string(length) + " bytes"};
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return {IoCode::kError, errnoText("recv", errno)};
    IoResult waited = waitFor(fd_.get(), POLLIN, remaining(deadline), stop);
    if (!waited.ok()) {
      if (waited.code == IoCode::kTimeout) {
        waited.message = "not complete within " + std::to_string(timeoutMs) + " ms (" + std::to_string(done) +
                         " of " + std::to_string(length) + " bytes)";
      }
      return waited;
    }
  }
  return {};
}

IoResult TcpSocket::writeAll(const iovec* iov, int count, int timeoutMs, const StopLatch* stop) {
  const int64_t deadline = timeoutMs < 0 ? -1 : monotonicMs() + timeoutMs;
  iovec parts[4];
  int n = count < 4 ? count : 4;
  for (int i = 0; i < n; ++i) parts[i] = iov[i];
  int first = 0;
  while (first < n) {
    if (parts[first].iov_len == 0) {
      ++first;
      continue;
    }
    msghdr msg{};
    msg.msg_iov = parts + first;
    msg.msg_iovlen = static_cast<size_t>(n - first);
    ssize_t written = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (written >= 0) {
      size_t left = static_cast<size_t>(written);
      while (left > 0 && first < n) {
        size_t take = left < parts[first].iov_len ? left : parts[first].iov_len;
        parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + take;
        parts[first].iov_len -= take;
        left -= take;
        if (parts[first].iov_len == 0) ++first;
      }
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return {IoCode::kError, errnoText("send", errno)};
    IoResult waited = waitFor(fd_.get(), POLLOUT, remaining(deadline), stop);
    if (!waited.ok()) return waited;
  }
  return {};
}

void TcpSocket::enableKeepalive(int deadPeerMs) {
  if (deadPeerMs <= 0 || !fd_.valid()) return;
  // Probes after an idle third of the budget, then every second; TCP_USER_TIMEOUT also bounds
  // unacknowledged data, so a peer that lost power is noticed while sending or while idle.
  int one = 1, idle = deadPeerMs / 3000 > 0 ? deadPeerMs / 3000 : 1, interval = 1, count = 3;
  unsigned int userTimeout = static_cast<unsigned int>(deadPeerMs);
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &userTimeout, sizeof(userTimeout));
}

bool TcpSocket::peerClosed() {
  pollfd pfd{fd_.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&pfd, 1, 0);
  } while (n < 0 && errno == EINTR);
  return n > 0;
}

int TcpSocket::localPort() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return -1;
}

std::string TcpSocket::peerName() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  return addressText(addr);
}

void TcpSocket::shutdownReads() {
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RD);
}

void TcpSocket::shutdownWrites() {
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_WR);
}

size_t TcpSocket::readAvailable(void* data, size_t length) {
  for (;;) {
    ssize_t n = ::recv(fd_.get(), data, length, 0);
    if (n > 0) return static_cast<size_t>(n);
    if (n < 0 && errno == EINTR) continue;
    return 0;
  }
}

}  // namespace finnsplit
