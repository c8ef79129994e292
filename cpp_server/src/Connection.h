// Connection: one framed protocol connection (docs/protocol.md) over a TcpSocket: reads and
// validates frames, writes frames, and runs either side of the handshake.
// Thread safety: not thread safe; owned and used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>

#include "Frame.h"
#include "Hello.h"
#include "TcpSocket.h"

namespace finnsplit {

struct ReadOutcome {
  enum Kind {
    kOk,
    kClosed,        // orderly close between frames
    kStopped,       // StopLatch triggered while waiting for a frame
    kMalformed,     // bad magic/version/type/flags, bad length, bad checksum, bad HELLO
    kDisconnected,  // truncated frame, reset, or a stall past the I/O timeout
  };
  Kind kind = kOk;
  std::string message;
  bool ok() const { return kind == kOk; }
};

class Connection {
 public:
  // ioTimeoutMs bounds a stall inside a frame (the gap between frames is unbounded).
  Connection(TcpSocket socket, int ioTimeoutMs);

  const std::string& peer() const { return peer_; }
  TcpSocket& socket() { return socket_; }

  // Waits for and validates the next header; `stop` ends only the wait before its first byte,
  // which is bounded by firstByteTimeoutMs (-1: unbounded, an idle link between frames).
  ReadOutcome readHeader(FrameHeader* header, const StopLatch* stop, int firstByteTimeoutMs = -1);
  // Reads the payload of the header just read into `dst` (header.length bytes), checks the checksum.
  ReadOutcome readPayload(const FrameHeader& header, uint8_t* dst);
  // readHeader + readControlPayload for a frame that must be a control frame.
  ReadOutcome readControl(FrameHeader* header, std::string* payload, const StopLatch* stop, int firstByteTimeoutMs);
  // readPayload for the control frame whose header was just read (at most kMaxControlPayload bytes).
  ReadOutcome readControlPayload(const FrameHeader& header, std::string* payload);

  // Writes one frame; only `stop` or a socket error ends it (a slow reader is backpressure).
  IoResult writeFrame(FrameType type, uint64_t seq, const uint8_t* payload, uint32_t length, const StopLatch* stop);
  // Best-effort ERROR frame before dropping the connection: written within the I/O timeout, then
  // a lingering half-close (at most ~kLingerMs of the peer's further input is discarded) so the
  // peer can read it. The connection can only be closed afterwards.
  void sendError(const std::string& message);
  static constexpr int kLingerMs = 100;

  // Why a handshake failed, for the stats.
  enum class HandshakeFailure { kNone, kMismatch, kMalformed, kDisconnected };
  // Receiving side: reads the peer's HELLO, checks it sends `expected`, replies HELLO or ERROR.
  // On a spec mismatch the message names both specs.
  Status acceptHandshake(const TensorSpec& expected, const std::string& selfNode, const std::string& selfRole,
                         Hello* peerHello, HandshakeFailure* failure);
  // Sending side: states `sending`, waits for the receiver's HELLO (or its ERROR, returned).
  Status connectHandshake(const TensorSpec& sending, const std::string& selfNode, const StopLatch* stop, bool* rejected);

 private:
  // writeFrame with a bound on each stall (-1: none).
  IoResult writeFrameWithin(FrameType type, uint64_t seq, const uint8_t* payload, uint32_t length, int idleTimeoutMs,
                            const StopLatch* stop);
  // A control frame (seq 0) whose payload is `text`.
  IoResult writeText(FrameType type, const std::string& text, int idleTimeoutMs, const StopLatch* stop);
  IoResult sendHello(const char* role, const std::string& node, const TensorSpec& spec, const StopLatch* stop);

  TcpSocket socket_;
  int ioTimeoutMs_;
  std::string peer_;
  uint8_t rawHeader_[Frame::kHeaderSize] = {};
};

}  // namespace finnsplit
