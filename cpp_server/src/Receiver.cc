#include "Receiver.h"

#include <time.h>

#include "Clock.h"
#include "Log.h"

namespace finnsplit {
Receiver::Receiver(ReceiverConfig config, BufferPool* pool, FrameQueue* queue, Stats* stats)
    : config_(std::move(config)), pool_(pool), queue_(queue), stats_(stats) {}

Receiver::~Receiver() { stopAndJoin(); }

Status Receiver::listen() {
  Status st = TcpSocket::listenOn(config_.host, config_.port, &listener_);
  if (!st) return st;
  port_ = listener_.localPort();
  return Status::ok();
}

void Receiver::start() { acceptor_ = std::thread(&Receiver::acceptLoop, this); }

void Receiver::stopAndJoin() {
  stop_.trigger();
  if (acceptor_.joinable()) acceptor_.join();
  reapFinished(true);
  listener_.close();
}

void Receiver::reapFinished(bool all) {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (all || it->finished->load()) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void Receiver::acceptLoop() {
  while (!stop_.triggered()) {
    TcpSocket socket;
    IoResult io = listener_.acceptOne(500, &stop_, &socket);
    reapFinished(false);
    if (io.code == IoCode::kStopped) break;
    if (io.code == IoCode::kTimeout) continue;
    if (!io.ok()) {
      LOG_WARN("accept failed: %s", io.message.c_str());
      timespec pause{0, 100000000};
      nanosleep(&pause, nullptr);  // e.g. EMFILE: do not spin
      continue;
    }
    if (static_cast<int>(workers_.size()) >= config_.maxUpstreams) {
      stats_->busyRejects++;
      Connection conn(std::move(socket), config_.ioTimeoutMs);
      LOG_WARN("refusing %s: already %d upstream connections", conn.peer().c_str(), config_.maxUpstreams);
      conn.sendError("server busy: already " + std::to_string(config_.maxUpstreams) + " upstream connections");
      continue;
    }
    Worker worker;
    worker.finished = std::make_shared<std::atomic<bool>>(false);
    auto finished = worker.finished;
    worker.thread = std::thread([this, finished](TcpSocket s) {
      serve(std::move(s));
      finished->store(true);
    }, std::move(socket));
    workers_.push_back(std::move(worker));
  }
}

void Receiver::serve(TcpSocket socket) {
  Connection conn(std::move(socket), config_.ioTimeoutMs);
  stats_->upstreams++;
  Hello peer;
  Connection::HandshakeFailure failure;
  Status st = conn.acceptHandshake(config_.expected, config_.node, "server", &peer, &failure);
  if (!st) {
    if (failure == Connection::HandshakeFailure::kMismatch) {
      stats_->specMismatches++;
      LOG_ERROR("%s", st.message().c_str());
    } else {
      (failure == Connection::HandshakeFailure::kDisconnected ? stats_->disconnects : stats_->badFrames)++;
      LOG_WARN("dropping %s: %s", conn.peer().c_str(), st.message().c_str());
    }
  } else {
    LOG_INFO("upstream '%s' at %s connected (%s)", peer.node.c_str(), conn.peer().c_str(),
             config_.expected.toString().c_str());
    readFrames(&conn, peer.node);
  }
  stats_->upstreams--;
}

void Receiver::drop(Connection* conn, const ReadOutcome& why) {
  const bool malformed = why.kind == ReadOutcome::kMalformed;
  (malformed ? stats_->badFrames : stats_->disconnects)++;
  LOG_WARN("dropping %s: %s", conn->peer().c_str(), why.message.c_str());
  if (malformed) conn->sendError(why.message);
}

void Receiver::readFrames(Connection* conn, const std::string& peerNode) {
  const size_t tensorBytes = config_.expected.packedBytes();
  const char* peer = conn->peer().c_str();
  bool haveSeq = false;
  uint64_t lastSeq = 0;
  for (;;) {
    FrameHeader header;
    ReadOutcome out = conn->readHeader(&header, &stop_);
    if (out.kind == ReadOutcome::kClosed) {
      LOG_INFO("upstream '%s' at %s closed the connection", peerNode.c_str(), peer);
      return;
    }
    if (out.kind == ReadOutcome::kStopped) return;
    if (!out.ok()) return drop(conn, out);
    if (header.type != FrameType::kTensor) {
      std::string payload;
      conn->readControlPayload(header, &payload);  // only for the log: the connection ends either way
      if (header.type == FrameType::kBye) {
        LOG_INFO("upstream '%s' at %s said BYE", peerNode.c_str(), peer);
      } else if (header.type == FrameType::kError) {
        LOG_WARN("upstream %s reports: %s", peer, payload.c_str());
      } else {
        drop(conn, {ReadOutcome::kMalformed,
                    std::string("unexpected ") + Frame::typeName(header.type) + " frame after the handshake"});
      }
      return;
    }
    Status st = Frame::checkLength(header, tensorBytes);
    if (st && haveSeq && header.seq <= lastSeq) {
      st = Status::error("sequence number " + std::to_string(header.seq) + " after " + std::to_string(lastSeq) +
                         " (frames must arrive in increasing order)");
    }
    if (!st) return drop(conn, {ReadOutcome::kMalformed, st.message()});
    int64_t waitStart = monotonicNs();
    uint8_t* buffer = pool_->acquire();
    if (!buffer) return;
    int64_t readStart = monotonicNs();
    stats_->recvWait.add(readStart - waitStart);
    out = conn->readPayload(header, buffer);
    if (!out.ok()) {
      pool_->release(buffer);
      return drop(conn, out);
    }
    stats_->recv.add(monotonicNs() - readStart);
    haveSeq = true;
    lastSeq = header.seq;
    stats_->framesIn++;
    if (!queue_->push(FrameSlot{header.seq, buffer})) {
      pool_->release(buffer);
      return;
    }
  }
}

}  // namespace finnsplit
