#include "Sender.h"

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <cerrno>

#include "Clock.h"
#include "Log.h"

namespace finnsplit {
Sender::Sender(SenderConfig config, FrameQueue* queue, BufferPool* pool, Stats* stats)
    : config_(std::move(config)), queue_(queue), pool_(pool), stats_(stats), retryMs_(config_.retryMinMs) {}

Sender::~Sender() {
  abort();
  join();
}

void Sender::start() { thread_ = std::thread(&Sender::loop, this); }

void Sender::join() {
  if (thread_.joinable()) thread_.join();
}

void Sender::backoff() {
  pollfd pfd{abort_.fd(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, retryMs_);
  } while (rc < 0 && errno == EINTR);
  retryMs_ = std::min(retryMs_ * 2, config_.retryMaxMs);
}

bool Sender::ensureConnected() {
  if (conn_ && conn_->socket().peerClosed()) {
    FrameHeader header;
    std::string payload;
    ReadOutcome said = conn_->readControl(&header, &payload, nullptr, 100);
    if (said.ok() && header.type == FrameType::kError) {
      LOG_WARN("next hop %s reports: %s", conn_->peer().c_str(), printable(payload).c_str());
    }
    LOG_WARN("next hop %s closed the connection; reconnecting", conn_->peer().c_str());
    conn_.reset();
    stats_->downstreamConnected = false;
  }
  if (conn_) return true;
  TcpSocket socket;
  IoResult io = TcpSocket::connectTo(config_.host, config_.port, config_.connectTimeoutMs, &abort_, &socket);
  Status st;
  bool rejected = false;
  if (io.ok()) {
    socket.enableKeepalive(config_.deadPeerMs);
    auto conn = std::make_unique<Connection>(std::move(socket), config_.ioTimeoutMs, config_.key);
    st = conn->connectHandshake(config_.spec, config_.node, &abort_, &rejected);
    if (st) conn_ = std::move(conn);
  } else {
    st = Status::error("connecting to " + config_.host + ":" + std::to_string(config_.port) + ": " + io.message);
  }
  if (!st) {
    if (abort_.triggered()) return false;
    stats_->sendErrors++;
    // A refused handshake is a wiring error: always loud. Plain connect failures (the next hop is
    // not up yet) are logged when they change, and at most every 5 s.
    int64_t nowMs = monotonicMs();
    if (rejected) {
      LOG_ERROR("%s", printable(st.message(), 600).c_str());
    } else if (st.message() != lastFailure_ || nowMs - lastFailureLogMs_ > 5000) {
      LOG_WARN("%s (retrying)", printable(st.message(), 600).c_str());
      lastFailureLogMs_ = nowMs;
    }
    lastFailure_ = st.message();
    backoff();
    return false;
  }
  if (everConnected_) stats_->reconnects++;
  everConnected_ = true;
  haveSent_ = false;  // a new connection: any sequence number may come first
  retryMs_ = config_.retryMinMs;
  lastFailure_.clear();
  stats_->downstreamConnected = true;
  LOG_INFO("connected to next hop %s (sending %s%s)", conn_->peer().c_str(), config_.spec.toString().c_str(),
           conn_->authenticated() ? ", authenticated" : "");
  return true;
}

void Sender::deliver(const FrameSlot& frame) {
  const uint32_t length = static_cast<uint32_t>(config_.spec.packedBytes());
  if (conn_ && haveSent_ && frame.seq <= lastSentSeq_) {
    // A new client run numbers its frames afresh: start a new connection (after BYE on this one).
    LOG_INFO("sequence number %llu after %llu (a new run upstream): new connection to the next hop",
             static_cast<unsigned long long>(frame.seq), static_cast<unsigned long long>(lastSentSeq_));
    conn_->writeFrame(FrameType::kBye, 0, nullptr, 0, &abort_);
    conn_.reset();
    stats_->downstreamConnected = false;
  }
  while (!abort_.triggered()) {
    if (!ensureConnected()) continue;
    int64_t start = monotonicNs();
    IoResult io = conn_->writeFrame(FrameType::kTensor, frame.seq, frame.data, length, &abort_);
    if (io.ok()) {
      stats_->send.add(monotonicNs() - start);
      stats_->framesOut++;
      haveSent_ = true;
      lastSentSeq_ = frame.seq;
      return;
    }
    if (io.code == IoCode::kStopped) break;
    stats_->sendErrors++;
    LOG_WARN("sending frame %llu to %s failed: %s; reconnecting", static_cast<unsigned long long>(frame.seq),
             conn_->peer().c_str(), io.message.c_str());
    conn_.reset();
    stats_->downstreamConnected = false;
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
    ensureConnected();  // idle: connect early, and notice a next hop that went away
  }
  if (conn_) {
    // Clean end of stream: the next hop sees BYE, not a truncated frame.
    conn_->writeFrame(FrameType::kBye, 0, nullptr, 0, &abort_);
    conn_.reset();
  }
  stats_->downstreamConnected = false;
  finished_.store(true);
}

}  // namespace finnsplit
