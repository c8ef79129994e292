#include "Sender.h"

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <cerrno>

#include "Clock.h"
#include "Log.h"

namespace finnsplit {

Sender::Sender(SenderConfig config, FrameQueue* queue, BufferPool* pool, Stats* stats)
    : config_(std::move(config)), queue_(queue), pool_(pool), stats_(stats) {
  for (const NextHop& hop : config_.hops) {
    Link link;
    link.hop = hop;
    link.retryMs = config_.retryMinMs;
    links_.push_back(std::move(link));
  }
}

Sender::~Sender() {
  abort();
  join();
}

void Sender::start() { thread_ = std::thread(&Sender::loop, this); }

void Sender::join() {
  if (thread_.joinable()) thread_.join();
}

void Sender::waitMs(int ms) {
  pollfd pfd{abort_.fd(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, ms);
  } while (rc < 0 && errno == EINTR);
}

int Sender::connectedCount() const {
  return static_cast<int>(std::count_if(links_.begin(), links_.end(), [](const Link& l) { return l.conn != nullptr; }));
}

void Sender::updateGauge() {
  const int connected = connectedCount();
  stats_->downstreams = connected;
  stats_->downstreamConnected = connected > 0;
}

void Sender::disconnect(Link* link) {
  link->conn.reset();
  updateGauge();
}

bool Sender::connect(Link* link, int timeoutMs) {
  TcpSocket socket;
  IoResult io = TcpSocket::connectTo(link->hop.host, link->hop.port, timeoutMs, &abort_, &socket);
  Status st;
  bool rejected = false;
  if (io.ok()) {
    socket.enableKeepalive(config_.deadPeerMs);
    // While another hop carries the stream, a replica that accepts but does not answer must not
    // hold it for the whole I/O timeout either.
    const bool quick = timeoutMs < config_.connectTimeoutMs;
    const int handshakeMs = quick ? std::min(config_.ioTimeoutMs, 1000) : config_.ioTimeoutMs;
    auto conn = std::make_unique<Connection>(std::move(socket), handshakeMs, config_.key);
    st = conn->connectHandshake(config_.spec, config_.node, &abort_, &rejected, config_.anyOrder);
    conn->setIoTimeoutMs(config_.ioTimeoutMs);
    if (st) link->conn = std::move(conn);
  } else {
    st = Status::error("connecting to " + link->hop.text() + ": " + io.message);
  }
  if (!st) {
    if (abort_.triggered()) return false;
    stats_->sendErrors++;
    // A refused handshake is a wiring error: always loud. Plain connect failures (the next hop is
    // not up yet, or a replica died) are logged when they change, and at most every 5 s per hop.
    int64_t nowMs = monotonicMs();
    if (rejected) {
      LOG_ERROR("%s", printable(st.message(), 600).c_str());
    } else if (st.message() != link->lastFailure || nowMs - link->lastFailureLogMs > 5000) {
      LOG_WARN("%s (retrying)", printable(st.message(), 600).c_str());
      link->lastFailureLogMs = nowMs;
    }
    link->lastFailure = st.message();
    link->retryAtMs = nowMs + link->retryMs;
    link->retryMs = std::min(link->retryMs * 2, config_.retryMaxMs);
    return false;
  }
  if (link->everConnected) stats_->reconnects++;
  link->everConnected = true;
  link->haveSent = false;  // a new connection: any sequence number may come first
  link->retryMs = config_.retryMinMs;
  link->retryAtMs = 0;
  link->lastFailure.clear();
  updateGauge();
  LOG_INFO("connected to next hop %s (sending %s%s%s)", link->conn->peer().c_str(), config_.spec.toString().c_str(),
           link->conn->authenticated() ? ", authenticated" : "", config_.anyOrder ? ", any order" : "");
  return true;
}

void Sender::refresh() {
  for (Link& link : links_) {
    if (!link.conn || !link.conn->socket().peerClosed()) continue;
    FrameHeader header;
    std::string payload;
    ReadOutcome said = link.conn->readControl(&header, &payload, nullptr, 100);
    if (said.ok() && header.type == FrameType::kError) {
      LOG_WARN("next hop %s reports: %s", link.conn->peer().c_str(), printable(payload).c_str());
    }
    LOG_WARN("next hop %s closed the connection; reconnecting", link.conn->peer().c_str());
    disconnect(&link);
  }
  const int64_t now = monotonicMs();
  for (Link& link : links_) {
    if (link.conn || now < link.retryAtMs || abort_.triggered()) continue;
    // While another hop carries the stream, a dead replica must not stall it for a full connect timeout.
    connect(&link, connectedCount() > 0 ? std::min(config_.quickConnectTimeoutMs, config_.connectTimeoutMs)
                                        : config_.connectTimeoutMs);
  }
}

Sender::Link* Sender::pick() {
  const size_t n = links_.size();
  std::vector<pollfd> fds;
  std::vector<size_t> which;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (nextLink_ + k) % n;
    if (!links_[i].conn) continue;
    fds.push_back(pollfd{links_[i].conn->socket().fd(), POLLOUT, 0});
    which.push_back(i);
  }
  if (fds.empty()) {
    int64_t soonest = links_.front().retryAtMs;
    for (const Link& link : links_) soonest = std::min(soonest, link.retryAtMs);
    const int64_t wait = std::clamp<int64_t>(soonest - monotonicMs(), 0, config_.retryMaxMs);
    if (wait > 0) waitMs(static_cast<int>(wait));
    return nullptr;
  }
  if (fds.size() == 1) return &links_[which[0]];  // one hop: its blocking write is the backpressure
  // Several: the first in round robin order whose socket can take data now; else wait for one.
  for (int timeoutMs : {0, 200}) {
    if (timeoutMs > 0) fds.push_back(pollfd{abort_.fd(), POLLIN, 0});
    int rc;
    do {
      rc = ::poll(fds.data(), fds.size(), timeoutMs);
    } while (rc < 0 && errno == EINTR);
    for (size_t k = 0; rc > 0 && k < which.size(); ++k) {
      if (fds[k].revents != 0) return &links_[which[k]];
    }
  }
  return nullptr;
}

void Sender::deliver(const FrameSlot& frame) {
  const uint32_t length = static_cast<uint32_t>(config_.spec.packedBytes());
  while (!abort_.triggered()) {
    refresh();
    Link* link = pick();
    if (!link) continue;
    if (!config_.anyOrder && link->haveSent && frame.seq <= link->lastSentSeq) {
      // A new client run numbers its frames afresh: start a new connection (after BYE on this one).
      LOG_INFO("sequence number %llu after %llu (a new run upstream): new connection to next hop %s",
               static_cast<unsigned long long>(frame.seq), static_cast<unsigned long long>(link->lastSentSeq),
               link->hop.text().c_str());
      link->conn->writeFrame(FrameType::kBye, 0, nullptr, 0, &abort_);
      disconnect(link);
      link->retryAtMs = 0;
      continue;
    }
    int64_t start = monotonicNs();
    IoResult io = link->conn->writeFrame(FrameType::kTensor, frame.seq, frame.data, length, &abort_);
    if (io.ok()) {
      stats_->send.add(monotonicNs() - start);
      stats_->framesOut++;
      link->haveSent = true;
      link->lastSentSeq = frame.seq;
      nextLink_ = (static_cast<size_t>(link - links_.data()) + 1) % links_.size();
      return;
    }
    if (io.code == IoCode::kStopped) break;
    stats_->sendErrors++;
    LOG_WARN("sending frame %llu to %s failed: %s; %s", static_cast<unsigned long long>(frame.seq),
             link->conn->peer().c_str(), io.message.c_str(),
             links_.size() > 1 ? "sending it to another next hop" : "reconnecting");
    disconnect(link);  // retried at once (it may have restarted), then with backoff
  }
  stats_->framesDropped++;
}

void Sender::loop() {
  FrameSlot frame;
  for (;;) {
    if (abort_.triggered()) {
      while (queue_->popFor(&frame, 0)) {
        stats_->framesDropped++;
        pool_->release(frame.data);
      }
      if (queue_->closedAndEmpty()) break;
      timespec pause{0, 10000000};
      nanosleep(&pause, nullptr);
      continue;
    }
    if (queue_->popFor(&frame, 200)) {
      deliver(frame);
      pool_->release(frame.data);
      continue;
    }
    if (queue_->closedAndEmpty()) break;
    refresh();  // idle: connect early, and notice a next hop that went away
  }
  for (Link& link : links_) {
    // Clean end of stream: each next hop sees BYE, not a truncated frame.
    if (link.conn) link.conn->writeFrame(FrameType::kBye, 0, nullptr, 0, &abort_);
    link.conn.reset();
  }
  updateGauge();
  finished_.store(true);
}

}  // namespace finnsplit
