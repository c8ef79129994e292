// Connection: one framed protocol connection (docs/protocol.md) over a TcpSocket: reads and
// validates frames, writes frames, and runs either side of the handshake. With a LinkKey the
// handshake authenticates both ends (LinkAuth.h) and every later frame is tagged and verified.
// Thread safety: not thread safe; owned and used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "Frame.h"
#include "Hello.h"
#include "LinkAuth.h"
#include "TcpSocket.h"

namespace finnsplit {

struct ReadOutcome {
  enum Kind {
    kOk,
    kClosed,        // orderly close between frames
    kStopped,       // StopLatch triggered while waiting for a frame
    kMalformed,     // bad magic/version/type/flags, bad length, bad checksum or tag, bad HELLO
    kDisconnected,  // truncated frame, reset, or a frame not complete within the I/O timeout
  };
  Kind kind = kOk;
  std::string message;
  bool ok() const { return kind == kOk; }
};

class Connection {
 public:
  // ioTimeoutMs bounds each frame in total once its first byte arrived (the gap between frames is
  // unbounded); `key` (may be null: an unauthenticated link) must outlive the connection.
  Connection(TcpSocket socket, int ioTimeoutMs, const LinkKey* key = nullptr);

  const std::string& peer() const { return peer_; }
  // Changes the per-frame I/O timeout (e.g. a short one for the handshake only).
  void setIoTimeoutMs(int ioTimeoutMs) { ioTimeoutMs_ = ioTimeoutMs; }
  TcpSocket& socket() { return socket_; }
  // True once the handshake proved the peer holds the link key (frames are tagged from then on).
  bool authenticated() const { return session_ != nullptr; }

  // Waits for and validates the next header; `stop` ends only the wait before its first byte,
  // which is bounded by firstByteTimeoutMs (-1: unbounded, an idle link between frames).
  ReadOutcome readHeader(FrameHeader* header, const StopLatch* stop, int firstByteTimeoutMs = -1);
  // Reads the payload (and tag) of the header just read into `dst` (header.length bytes), checks
  // the checksum and, on an authenticated link, the tag.
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
  enum class HandshakeFailure { kNone, kMismatch, kMalformed, kDisconnected, kAuth, kBusy };
  // Receiving side, all within timeoutMs: reads the peer's HELLO, authenticates it (with a key),
  // checks it sends `expected`, asks `admit` (if given; "" admits, anything else is the refusal),
  // replies HELLO or ERROR. A spec mismatch names both specs to an authenticated peer, only the
  // peer's own to an unauthenticated one (the log has both).
  Status acceptHandshake(const TensorSpec& expected, const std::string& selfNode, const std::string& selfRole,
                         Hello* peerHello, HandshakeFailure* failure, int timeoutMs,
                         const std::function<std::string(const Hello&)>& admit = {});
  // Sending side, within the I/O timeout: states `sending`, authenticates the receiver (with a key)
  // and waits for its HELLO (or its ERROR, returned with *rejected). `anyOrder`: this side's frames
  // may come in any sequence order (HELLO order=any: it merges replicated stages).
  Status connectHandshake(const TensorSpec& sending, const std::string& selfNode, const StopLatch* stop, bool* rejected,
                          bool anyOrder = false);

 private:
  // A frame (tagged on an authenticated link), each write bounded by timeoutMs in total (-1: none).
  IoResult writeFrameWithin(FrameType type, uint64_t seq, const uint8_t* payload, uint32_t length, int timeoutMs,
                            const StopLatch* stop);
  // A control frame (seq 0) whose payload is `text`.
  IoResult writeText(FrameType type, const std::string& text, int timeoutMs, const StopLatch* stop);
  // `timeoutMs` cut to what is left of the handshake's deadline, if one runs.
  int budget(int timeoutMs) const;
  Status authenticateSender(const Hello& hello, const std::string& helloText, HandshakeFailure* failure);
  Status authenticateReceiver(const Nonce& ours, const std::string& helloText, const StopLatch* stop, bool* rejected);

  TcpSocket socket_;
  int ioTimeoutMs_;
  const LinkKey* key_;
  std::unique_ptr<LinkSession> session_;
  int64_t deadlineMs_ = -1;  // the running handshake's deadline (monotonic ms), -1 outside one
  std::string peer_;
  uint8_t rawHeader_[Frame::kHeaderSize] = {};
};

}  // namespace finnsplit
