#include "Connection.h"

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

}  // namespace

Connection::Connection(TcpSocket socket, int ioTimeoutMs)
    : socket_(std::move(socket)), ioTimeoutMs_(ioTimeoutMs), peer_(socket_.peerName()) {}

ReadOutcome Connection::readHeader(FrameHeader* header, const StopLatch* stop, int firstByteTimeoutMs) {
  // The first byte may take long (an idle link); the rest of the header must follow promptly.
  IoResult io = socket_.readFull(rawHeader_, 1, firstByteTimeoutMs, stop);
  if (!io.ok()) return fromIo(io, "reading frame header");
  io = socket_.readFull(rawHeader_ + 1, Frame::kHeaderSize - 1, ioTimeoutMs_, nullptr);
  if (!io.ok()) {
    ReadOutcome out = fromIo(io, "truncated frame header");
    if (out.kind == ReadOutcome::kClosed) out = {ReadOutcome::kDisconnected, "truncated frame header: peer closed"};
    return out;
  }
  Status st = Frame::decodeHeader(rawHeader_, header);
  if (!st) return {ReadOutcome::kMalformed, st.message()};
  return {};
}

ReadOutcome Connection::readPayload(const FrameHeader& header, uint8_t* dst) {
  if (header.length > 0) {
    IoResult io = socket_.readFull(dst, header.length, ioTimeoutMs_, nullptr);
    if (!io.ok()) {
      ReadOutcome out = fromIo(io, "truncated frame payload");
      if (out.kind == ReadOutcome::kClosed) {
        out = {ReadOutcome::kDisconnected, "truncated frame payload: peer closed after the header"};
      }
      return out;
    }
  }
  Status st = Frame::verifyChecksum(rawHeader_, header, dst);
  if (!st) return {ReadOutcome::kMalformed, st.message()};
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
                                      int idleTimeoutMs, const StopLatch* stop) {
  uint8_t header[Frame::kHeaderSize];
  Frame::encode(type, seq, payload, length, header);
  iovec iov[2] = {{header, sizeof(header)}, {const_cast<uint8_t*>(payload), length}};
  return socket_.writeAll(iov, length ? 2 : 1, idleTimeoutMs, stop);
}

IoResult Connection::writeText(FrameType type, const std::string& text, int idleTimeoutMs, const StopLatch* stop) {
  return writeFrameWithin(type, 0, reinterpret_cast<const uint8_t*>(text.data()), static_cast<uint32_t>(text.size()),
                          idleTimeoutMs, stop);
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
                                   const std::string& selfRole, Hello* peerHello, HandshakeFailure* failure) {
  *failure = HandshakeFailure::kMalformed;
  FrameHeader header;
  std::string payload;
  // A peer that connects must say HELLO promptly: the first byte is bounded by the I/O timeout too.
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
    if (header.type == FrameType::kError) text += " (" + payload.substr(0, 200) + ")";
    return refuse(text);
  }
  Status st = Hello::parse(payload.data(), payload.size(), peerHello);
  if (!st) return refuse(st.message());
  if (peerHello->role != "sender") {
    return refuse("peer '" + peerHello->node + "' also says it is a receiver (two result ports wired together?)");
  }
  std::string problem = Hello::mismatch(*peerHello, expected, selfRole);
  if (!problem.empty()) {
    *failure = HandshakeFailure::kMismatch;
    std::string text = "mis-wired chain: " + problem + " (peer '" + peerHello->node + "' at " + peer_ + ", this " +
                       selfRole + " '" + selfNode + "')";
    sendError(text);
    return Status::error(text);
  }
  IoResult io = sendHello("receiver", selfNode, expected, nullptr);
  if (!io.ok()) {
    *failure = HandshakeFailure::kDisconnected;
    return Status::error("handshake: sending HELLO: " + io.message);
  }
  *failure = HandshakeFailure::kNone;
  return Status::ok();
}

Status Connection::connectHandshake(const TensorSpec& sending, const std::string& selfNode, const StopLatch* stop,
                                    bool* rejected) {
  *rejected = false;
  IoResult io = sendHello("sender", selfNode, sending, stop);
  if (!io.ok()) return Status::error("handshake: sending HELLO: " + io.message);
  FrameHeader header;
  std::string payload;
  // The reply is due promptly; wait at most the I/O timeout for its first byte as well.
  ReadOutcome out = readControl(&header, &payload, stop, ioTimeoutMs_);
  if (!out.ok()) return Status::error("handshake with " + peer_ + ": " + out.message);
  if (header.type == FrameType::kError) {
    *rejected = true;
    return Status::error("rejected by " + peer_ + ": " + payload);
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

IoResult Connection::sendHello(const char* role, const std::string& node, const TensorSpec& spec,
                               const StopLatch* stop) {
  Hello hello;
  hello.role = role;
  hello.node = node;
  hello.spec = spec;
  return writeText(FrameType::kHello, hello.encode(), -1, stop);
}

}  // namespace finnsplit
