#include "Receiver.h"

#include <sys/socket.h>
#include <time.h>

#include <functional>
#include <vector>

#include "Clock.h"
#include "Log.h"

namespace finnsplit {
namespace {

// Beyond maxUpstreams + maxHandshakes, this many evicted connections may still be winding down
// before new ones are refused outright (bounds the threads a flood can cause).
constexpr int kWindingDown = 16;

// Detaches a slot from its socket before the socket closes (declared after the Connection, so it is
// destroyed first): an eviction never shuts down a descriptor number that was reused.
class SlotDetach {
 public:
  explicit SlotDetach(std::function<void()> detach) : detach_(std::move(detach)) {}
  ~SlotDetach() { detach_(); }
  SlotDetach(const SlotDetach&) = delete;
  SlotDetach& operator=(const SlotDetach&) = delete;

 private:
  std::function<void()> detach_;
};

}  // namespace

void Receiver::Slot::evict() {
  std::lock_guard<std::mutex> lock(mu);
  evicted = true;
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

void Receiver::Slot::detach() {
  std::lock_guard<std::mutex> lock(mu);
  fd = -1;
}

bool Receiver::Slot::wasEvicted() {
  std::lock_guard<std::mutex> lock(mu);
  return evicted;
}

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
  std::vector<SlotPtr> done;
  {
    std::lock_guard<std::mutex> lock(slotsMu_);
    for (auto it = slots_.begin(); it != slots_.end();) {
      if (all || (*it)->finished.load()) {
        done.push_back(*it);
        it = slots_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& slot : done) {
    if (slot->thread.joinable()) slot->thread.join();  // outside the lock: the thread may be in admit()
  }
}

bool Receiver::makeRoomForHandshake() {
  std::lock_guard<std::mutex> lock(slotsMu_);
  int live = 0, handshaking = 0;
  SlotPtr oldest;
  for (auto& slot : slots_) {
    if (slot->finished.load()) continue;
    ++live;
    if (slot->admitted.load() || slot->wasEvicted()) continue;
    ++handshaking;
    if (!oldest || slot->acceptedMs < oldest->acceptedMs) oldest = slot;
  }
  if (live >= config_.maxUpstreams + config_.maxHandshakes + kWindingDown) return false;
  if (handshaking >= config_.maxHandshakes && oldest) {
    stats_->evictions++;
    LOG_WARN("%d connections in their handshake: evicting the oldest, %s", handshaking, oldest->peer.c_str());
    oldest->evict();
  }
  return true;
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
    socket.enableKeepalive(config_.deadPeerMs);
    bool room = makeRoomForHandshake();
    // Evicted connections may still be winding down: give them up to 200 ms (a flood waits in the
    // listen backlog meanwhile) before refusing outright.
    for (int i = 0; !room && i < 20 && !stop_.triggered(); ++i) {
      timespec pause{0, 10000000};
      nanosleep(&pause, nullptr);
      reapFinished(false);
      room = makeRoomForHandshake();
    }
    if (!room) {
      stats_->busyRejects++;
      Connection conn(std::move(socket), 50);
      LOG_WARN("refusing %s: too many connections", conn.peer().c_str());
      conn.writeFrame(FrameType::kError, 0, reinterpret_cast<const uint8_t*>("server busy"), 11, &stop_);
      continue;  // closed without lingering: the acceptor must not be slowed down by a flood
    }
    auto slot = std::make_shared<Slot>();
    slot->fd = socket.fd();
    slot->acceptedMs = monotonicMs();
    slot->peer = socket.peerName();
    {
      std::lock_guard<std::mutex> lock(slotsMu_);
      slots_.push_back(slot);
      slot->thread = std::thread([this, slot](TcpSocket s) { serve(std::move(s), slot); }, std::move(socket));
    }
  }
}

bool Receiver::admit(const SlotPtr& slot, const std::string& peerNode) {
  std::lock_guard<std::mutex> lock(slotsMu_);
  int admitted = 0;
  SlotPtr stalest;
  for (auto& other : slots_) {
    if (other == slot || other->finished.load() || !other->admitted.load() || other->wasEvicted()) continue;
    ++admitted;
    if (!stalest || other->lastActiveMs.load() < stalest->lastActiveMs.load()) stalest = other;
  }
  if (admitted >= config_.maxUpstreams) {
    if (!config_.key || !stalest) return false;  // without authentication, anyone could evict the real upstream
    stats_->evictions++;
    LOG_WARN("upstream '%s' authenticated: evicting the least recently active upstream %s (idle %lld ms)",
             printable(peerNode).c_str(), stalest->peer.c_str(),
             static_cast<long long>(monotonicMs() - stalest->lastActiveMs.load()));
    stalest->evict();
  }
  slot->lastActiveMs = monotonicMs();
  slot->admitted = true;
  return true;
}

void Receiver::serve(TcpSocket socket, SlotPtr slot) {
  Connection conn(std::move(socket), config_.ioTimeoutMs, config_.key);
  SlotDetach detach([&slot] {
    slot->detach();
    slot->finished = true;
  });
  Hello peer;
  Connection::HandshakeFailure failure;
  auto admission = [this, &slot](const Hello& hello) {
    if (admit(slot, hello.node)) return std::string();
    return "server busy: already " + std::to_string(config_.maxUpstreams) + " upstream connections";
  };
  Status st = conn.acceptHandshake(config_.expected, config_.node, "server", &peer, &failure,
                                   config_.handshakeTimeoutMs, admission);
  if (!st) {
    switch (failure) {
      case Connection::HandshakeFailure::kBusy:
        stats_->busyRejects++;
        LOG_WARN("refusing %s: %s", conn.peer().c_str(), st.message().c_str());
        break;
      case Connection::HandshakeFailure::kMismatch:
        stats_->specMismatches++;
        LOG_ERROR("%s", printable(st.message(), 600).c_str());
        break;
      case Connection::HandshakeFailure::kAuth:
        stats_->authFailures++;
        LOG_WARN("refusing %s: %s", conn.peer().c_str(), printable(st.message()).c_str());
        break;
      default:
        (failure == Connection::HandshakeFailure::kDisconnected ? stats_->disconnects : stats_->badFrames)++;
        LOG_WARN("dropping %s: %s%s", conn.peer().c_str(), printable(st.message()).c_str(),
                 slot->wasEvicted() ? " (evicted)" : "");
    }
    return;
  }
  stats_->upstreams++;
  const bool anyOrder = peer.order == "any";
  LOG_INFO("upstream '%s' at %s connected (%s%s%s)", printable(peer.node).c_str(), conn.peer().c_str(),
           config_.expected.toString().c_str(), conn.authenticated() ? ", authenticated" : "",
           anyOrder ? ", frames in any order" : "");
  readFrames(&conn, printable(peer.node), slot.get(), anyOrder);
  stats_->upstreams--;
}

void Receiver::drop(Connection* conn, const ReadOutcome& why, Slot* slot) {
  const bool malformed = why.kind == ReadOutcome::kMalformed;
  (malformed ? stats_->badFrames : stats_->disconnects)++;
  LOG_WARN("dropping %s: %s%s", conn->peer().c_str(), printable(why.message).c_str(),
           slot->wasEvicted() ? " (evicted)" : "");
  if (malformed) conn->sendError(why.message);
}

void Receiver::readFrames(Connection* conn, const std::string& peerNode, Slot* slot, bool anyOrder) {
  const size_t tensorBytes = config_.expected.packedBytes();
  const char* peer = conn->peer().c_str();
  bool haveSeq = false;
  uint64_t lastSeq = 0;
  for (;;) {
    FrameHeader header;
    ReadOutcome out = conn->readHeader(&header, &stop_);
    if (out.kind == ReadOutcome::kClosed) {
      LOG_INFO("upstream '%s' at %s %s", peerNode.c_str(), peer,
               slot->wasEvicted() ? "was evicted" : "closed the connection");
      return;
    }
    if (out.kind == ReadOutcome::kStopped) return;
    if (!out.ok()) return drop(conn, out, slot);
    if (header.type != FrameType::kTensor) {
      std::string payload;
      ReadOutcome control = conn->readControlPayload(header, &payload);
      if (!control.ok()) return drop(conn, control, slot);  // e.g. a forged BYE fails its tag
      if (header.type == FrameType::kBye) {
        LOG_INFO("upstream '%s' at %s said BYE", peerNode.c_str(), peer);
      } else if (header.type == FrameType::kError) {
        LOG_WARN("upstream %s reports: %s", peer, printable(payload).c_str());
      } else {
        drop(conn, {ReadOutcome::kMalformed,
                    std::string("unexpected ") + Frame::typeName(header.type) + " frame after the handshake"},
             slot);
      }
      return;
    }
    Status st = Frame::checkLength(header, tensorBytes);
    if (st && !anyOrder && haveSeq && header.seq <= lastSeq) {
      st = Status::error("sequence number " + std::to_string(header.seq) + " after " + std::to_string(lastSeq) +
                         " (frames must arrive in increasing order)");
    }
    if (!st) return drop(conn, {ReadOutcome::kMalformed, st.message()}, slot);
    int64_t waitStart = monotonicNs();
    uint8_t* buffer = pool_->acquire();
    if (!buffer) return;
    int64_t readStart = monotonicNs();
    stats_->recvWait.add(readStart - waitStart);
    out = conn->readPayload(header, buffer);
    if (!out.ok()) {
      pool_->release(buffer);
      return drop(conn, out, slot);
    }
    stats_->recv.add(monotonicNs() - readStart);
    slot->lastActiveMs = monotonicMs();
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
