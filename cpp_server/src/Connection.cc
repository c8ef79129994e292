#include "Connection.h"

#include "Clock.h"
#include "Log.h"

namespace finnsplit {
namespace {

ReadOutcome fromIo(const IoResult& io, const char* where) {
  switch (io.code) {
    case IoCode::kOk: return {};
    case IoCode::kEof: return {ReadOutcome::kClosed, "peer closed the connection"};
    case IoCode::kStopped: return {ReadOutcome::kStopped, "stopped"};
    default: return {ReadOutcome::kDisconnected, std::string(where) + ": " + io.message};
  }
}

// Clears a connection's handshake deadline when the handshake ends, however it ends.
class DeadlineScope {
 public:
  DeadlineScope(int64_t* slot, int timeoutMs) : slot_(slot) { *slot_ = monotonicMs() + timeoutMs; }
  ~DeadlineScope() { *slot_ = -1; }
  DeadlineScope(const DeadlineScope&) = delete;
  DeadlineScope& operator=(const DeadlineScope&) = delete;

 private:
  int64_t* slot_;
};

const char kAuthName[] = "hmac-sha256";

}  // namespace

Connection::Connection(TcpSocket socket, int ioTimeoutMs, const LinkKey* key)
    : socket_(std::move(socket)), ioTimeoutMs_(ioTimeoutMs), key_(key), peer_(socket_.peerName()) {}

int Connection::budget(int timeoutMs) const {
  if (deadlineMs_ < 0) return timeoutMs;
  int64_t left = deadlineMs_ - monotonicMs();
  int cut = left > 0 ? static_cast<int>(left) : 0;
  return timeoutMs < 0 || cut < timeoutMs ? cut : timeoutMs;
}

ReadOutcome Connection::readHeader(FrameHeader* header, const StopLatch* stop, int firstByteTimeoutMs) {
  // The first byte may take long (an idle link); the rest of the header must follow promptly.
  IoResult io = socket_.readFull(rawHeader_, 1, budget(firstByteTimeoutMs), stop);
  if (!io.ok()) return fromIo(io, "reading frame header");
  io = socket_.readFull(rawHeader_ + 1, Frame::kHeaderSize - 1, budget(ioTimeoutMs_), nullptr);
  if (!io.ok()) {
    ReadOutcome out = fromIo(io, "truncated frame header");
    if (out.kind == ReadOutcome::kClosed) out = {ReadOutcome::kDisconnected, "truncated frame header: peer closed"};
    return out;
  }
  Status st = Frame::decodeHeader(rawHeader_, header);
  if (!st) return {ReadOutcome::kMalformed, st.message()};
  const bool tagged = (header->flags & Frame::kTagged) != 0;
  if (tagged != authenticated()) {
    return {ReadOutcome::kMalformed, tagged ? "a tagged frame on a link that is not authenticated"
                                            : "an untagged frame on an authenticated link"};
  }
  return {};
}

ReadOutcome Connection::readPayload(const FrameHeader& header, uint8_t* dst) {
  // Payload and tag together within the I/O timeout: a peer cannot hold a slot by trickling bytes.
  const int64_t end = monotonicMs() + budget(ioTimeoutMs_);
  auto left = [end] { return static_cast<int>(end > monotonicMs() ? end - monotonicMs() : 0); };
  if (header.length > 0) {
    IoResult io = socket_.readFull(dst, header.length, left(), nullptr);
    if (!io.ok()) {
      ReadOutcome out = fromIo(io, "truncated frame payload");
      if (out.kind == ReadOutcome::kClosed) {
        out = {ReadOutcome::kDisconnected, "truncated frame payload: peer closed after the header"};
      }
      return out;
    }
  }
  uint8_t tag[LinkSession::kTagBytes];
  if (session_) {
    IoResult io = socket_.readFull(tag, sizeof(tag), left(), nullptr);
    if (!io.ok()) return {ReadOutcome::kDisconnected, "truncated frame tag: " + io.message};
  }
  Status st = Frame::verifyChecksum(rawHeader_, header, dst);
  if (!st) return {ReadOutcome::kMalformed, st.message()};
  if (session_ && !session_->verifyIncoming(rawHeader_, Frame::kHeaderSize, dst, header.length, tag)) {
    return {ReadOutcome::kMalformed, std::string("authentication tag mismatch in ") + Frame::typeName(header.type) +
                                         " frame (not from the authenticated peer)"};
  }
  return {};
}

ReadOutcome Connection::readControl(FrameHeader* header, std::string* payload, const StopLatch* stop,
                                    int firstByteTimeoutMs) {
  ReadOutcome out = readHeader(header, stop, firstByteTimeoutMs);
  if (!out.ok()) return out;
  if (header->type == FrameType::kTensor) {
    return {ReadOutcome::kMalformed, "TENSOR frame before the handshake completed"};
  }
  return readControlPayload(*header, payload);
}

ReadOutcome Connection::readControlPayload(const FrameHeader& header, std::string* payload) {
  Status st = Frame::checkLength(header, 0);
  if (!st) return {ReadOutcome::kMalformed, st.message()};
  payload->assign(header.length, '\0');
  return readPayload(header, reinterpret_cast<uint8_t*>(&(*payload)[0]));
}

IoResult Connection::writeFrame(FrameType type, uint64_t seq, const uint8_t* payload, uint32_t length,
                                const StopLatch* stop) {
  return writeFrameWithin(type, seq, payload, length, -1, stop);
}

IoResult Connection::writeFrameWithin(FrameType type, uint64_t seq, const uint8_t* payload, uint32_t length,
                                      int timeoutMs, const StopLatch* stop) {
  uint8_t header[Frame::kHeaderSize];
  uint8_t tag[LinkSession::kTagBytes];
  Frame::encode(type, seq, payload, length, header, session_ ? Frame::kTagged : 0);
  iovec iov[3];
  int count = 0;
  iov[count++] = {header, sizeof(header)};
  if (length) iov[count++] = {const_cast<uint8_t*>(payload), length};
  if (session_) {
    session_->tagOutgoing(header, sizeof(header), payload, length, tag);
    iov[count++] = {tag, sizeof(tag)};
  }
  return socket_.writeAll(iov, count, budget(timeoutMs), stop);
}

IoResult Connection::writeText(FrameType type, const std::string& text, int timeoutMs, const StopLatch* stop) {
  return writeFrameWithin(type, 0, reinterpret_cast<const uint8_t*>(text.data()), static_cast<uint32_t>(text.size()),
                          timeoutMs, stop);
}

void Connection::sendError(const std::string& message) {
  if (!writeText(FrameType::kError, message.substr(0, Frame::kMaxControlPayload), ioTimeoutMs_, nullptr).ok()) return;
  // Lingering close: closing with unread input would send RST, and the peer's kernel could then
  // discard the ERROR before the peer reads it. Half-close, then discard what the peer still sends.
  socket_.shutdownWrites();
  uint8_t sink[4096];
  for (int i = 0; i < 16; ++i) {
    IoResult io = socket_.readFull(sink, 1, kLingerMs, nullptr);
    if (!io.ok()) break;
    socket_.readAvailable(sink, sizeof(sink));
  }
}

Status Connection::acceptHandshake(const TensorSpec& expected, const std::string& selfNode,
                                   const std::string& selfRole, Hello* peerHello, HandshakeFailure* failure,
                                   int timeoutMs, const std::function<std::string(const Hello&)>& admit) {
  DeadlineScope deadline(&deadlineMs_, timeoutMs);  // a peer cannot hold a slot by trickling its HELLO
  *failure = HandshakeFailure::kMalformed;
  FrameHeader header;
  std::string payload;
  ReadOutcome out = readControl(&header, &payload, nullptr, ioTimeoutMs_);
  if (!out.ok()) {
    if (out.kind == ReadOutcome::kMalformed) {
      sendError("handshake: " + out.message);
    } else {
      *failure = HandshakeFailure::kDisconnected;
    }
    return Status::error("handshake: " + out.message);
  }
  // A malformed handshake is answered with the same message it is reported with.
  auto refuse = [this](const std::string& text) {
    sendError("handshake: " + text);
    return Status::error("handshake: " + text);
  };
  if (header.type != FrameType::kHello) {
    std::string text = std::string("expected HELLO, got ") + Frame::typeName(header.type);
    if (header.type == FrameType::kError) text += " (" + printable(payload, 200) + ")";
    return refuse(text);
  }
  Status st = Hello::parse(payload.data(), payload.size(), peerHello);
  if (!st) return refuse(st.message());
  if (peerHello->role != "sender") {
    return refuse("peer '" + peerHello->node + "' also says it is a receiver (two result ports wired together?)");
  }
  st = authenticateSender(*peerHello, payload, failure);
  if (!st) return st;
  std::string problem = Hello::mismatch(*peerHello, expected, selfRole);
  if (!problem.empty()) {
    *failure = HandshakeFailure::kMismatch;
    std::string text = "mis-wired chain: " + problem + " (peer '" + peerHello->node + "' at " + peer_ + ", this " +
                       selfRole + " '" + selfNode + "')";
    // What this server expects is told only to a peer that proved it belongs to the deployment.
    sendError(authenticated() ? text : "mis-wired chain: peer '" + peerHello->node + "' sends " +
                                           peerHello->spec.toString() + ", which this " + selfRole + " does not expect");
    return Status::error(text);
  }
  const std::string refusal = admit ? admit(*peerHello) : "";
  if (!refusal.empty()) {
    *failure = HandshakeFailure::kBusy;
    sendError(refusal);
    return Status::error(refusal);
  }
  Hello reply;
  reply.role = "receiver";
  reply.node = selfNode;
  reply.spec = expected;
  IoResult io = writeText(FrameType::kHello, reply.encode(), -1, nullptr);
  if (!io.ok()) {
    *failure = HandshakeFailure::kDisconnected;
    return Status::error("handshake: sending HELLO: " + io.message);
  }
  *failure = HandshakeFailure::kNone;
  return Status::ok();
}

Status Connection::authenticateSender(const Hello& hello, const std::string& helloText, HandshakeFailure* failure) {
  if (!key_) {
    if (hello.auth.empty()) return Status::ok();
    *failure = HandshakeFailure::kAuth;
    sendError("handshake: this server does not authenticate links (it has no link key)");
    return Status::error("handshake: peer '" + hello.node + "' at " + peer_ +
                         " authenticates, but this server has no --auth-key-file");
  }
  *failure = HandshakeFailure::kAuth;
  Nonce theirs;
  if (hello.auth != kAuthName || !Nonce::parseHex(hello.nonce, &theirs)) {
    sendError("handshake: this link requires authentication");
    return Status::error("handshake: peer '" + hello.node + "' at " + peer_ +
                         " did not authenticate (no link key: not part of this deployment)");
  }
  const Nonce ours = Nonce::random();
  const HandshakeProofs proofs = HandshakeProofs::compute(*key_, theirs, ours, helloText);
  AuthMessage challenge{ours.hex(), toHex(proofs.receiverMac, sizeof(proofs.receiverMac))};
  IoResult io = writeText(FrameType::kAuth, challenge.encode(), -1, nullptr);
  if (!io.ok()) {
    *failure = HandshakeFailure::kDisconnected;
    return Status::error("handshake: sending AUTH: " + io.message);
  }
  FrameHeader header;
  std::string payload;
  ReadOutcome out = readControl(&header, &payload, nullptr, ioTimeoutMs_);
  if (!out.ok()) {
    if (out.kind != ReadOutcome::kMalformed) *failure = HandshakeFailure::kDisconnected;
    return Status::error("handshake: waiting for AUTH: " + out.message);
  }
  AuthMessage answer;
  uint8_t mac[Sha256::kDigestBytes];
  if (header.type != FrameType::kAuth || !AuthMessage::parse(payload.data(), payload.size(), false, &answer) ||
      !fromHex(answer.mac, mac, sizeof(mac)) || !equalConstantTime(mac, proofs.senderMac, sizeof(mac))) {
    sendError("handshake: authentication failed");
    return Status::error("handshake: peer '" + hello.node + "' at " + peer_ +
                         " failed to authenticate (wrong link key: not part of this deployment)");
  }
  session_ = std::make_unique<LinkSession>(proofs.sessionKey, false);
  return Status::ok();
}

Status Connection::connectHandshake(const TensorSpec& sending, const std::string& selfNode, const StopLatch* stop,
                                    bool* rejected, bool anyOrder) {
  DeadlineScope deadline(&deadlineMs_, ioTimeoutMs_);
  *rejected = false;
  Hello hello;
  hello.role = "sender";
  hello.node = selfNode;
  hello.spec = sending;
  if (anyOrder) hello.order = "any";
  const Nonce ours = key_ ? Nonce::random() : Nonce();
  if (key_) {
    hello.auth = kAuthName;
    hello.nonce = ours.hex();
  }
  const std::string helloText = hello.encode();
  IoResult io = writeText(FrameType::kHello, helloText, -1, stop);
  if (!io.ok()) return Status::error("handshake: sending HELLO: " + io.message);
  if (key_) {
    Status st = authenticateReceiver(ours, helloText, stop, rejected);
    if (!st) return st;
  }
  FrameHeader header;
  std::string payload;
  ReadOutcome out = readControl(&header, &payload, stop, ioTimeoutMs_);
  if (!out.ok()) return Status::error("handshake with " + peer_ + ": " + out.message);
  if (header.type == FrameType::kError) {
    *rejected = true;
    return Status::error("rejected by " + peer_ + ": " + printable(payload));
  }
  if (header.type == FrameType::kAuth) {
    *rejected = true;
    return Status::error("next hop " + peer_ + " requires link authentication; this server has no --auth-key-file");
  }
  if (header.type != FrameType::kHello) {
    return Status::error(std::string("handshake with ") + peer_ + ": expected HELLO, got " + Frame::typeName(header.type));
  }
  Hello reply;
  Status st = Hello::parse(payload.data(), payload.size(), &reply);
  if (!st) return st.withContext("handshake with " + peer_);
  if (reply.role != "receiver" || reply.spec != sending || reply.packing != "dense") {
    *rejected = true;
    return Status::error("mis-wired chain: this server sends " + sending.toString() + " but peer '" + reply.node +
                         "' at " + peer_ + " expects " + reply.spec.toString());
  }
  return Status::ok();
}

Status Connection::authenticateReceiver(const Nonce& ours, const std::string& helloText, const StopLatch* stop,
                                        bool* rejected) {
  FrameHeader header;
  std::string payload;
  ReadOutcome out = readControl(&header, &payload, stop, ioTimeoutMs_);
  if (!out.ok()) return Status::error("handshake with " + peer_ + ": " + out.message);
  *rejected = true;
  if (header.type == FrameType::kError) return Status::error("rejected by " + peer_ + ": " + printable(payload));
  if (header.type == FrameType::kHello) {
    return Status::error("next hop " + peer_ + " does not authenticate links (started without --auth-key-file)");
  }
  AuthMessage challenge;
  Nonce theirs;
  uint8_t mac[Sha256::kDigestBytes];
  if (header.type != FrameType::kAuth || !AuthMessage::parse(payload.data(), payload.size(), true, &challenge) ||
      !Nonce::parseHex(challenge.nonce, &theirs) || !fromHex(challenge.mac, mac, sizeof(mac))) {
    return Status::error("handshake with " + peer_ + ": expected AUTH, got a malformed " +
                         Frame::typeName(header.type));
  }
  const HandshakeProofs proofs = HandshakeProofs::compute(*key_, ours, theirs, helloText);
  if (!equalConstantTime(mac, proofs.receiverMac, sizeof(mac))) {
    return Status::error("next hop " + peer_ + " failed to authenticate (wrong link key: not this deployment's)");
  }
  AuthMessage answer{"", toHex(proofs.senderMac, sizeof(proofs.senderMac))};
  IoResult io = writeText(FrameType::kAuth, answer.encode(), -1, stop);
  if (!io.ok()) return Status::error("handshake: sending AUTH: " + io.message);
  session_ = std::make_unique<LinkSession>(proofs.sessionKey, true);
  *rejected = false;
  return Status::ok();
}

}  // namespace finnsplit
