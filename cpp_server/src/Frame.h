// Frame: the framed message of the finnsplit wire protocol (docs/protocol.md, version 2): a 24-byte
// little-endian header (magic, version, type, flags, sequence number, payload length, checksum)
// followed by the payload, then, with flag kTagged, a 16-byte authentication tag (LinkAuth.h).
// The checksum is the CRC-32 of header bytes [0, 20) then the payload (the header bytes alone on a
// tagged frame, whose tag covers the payload).
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "Status.h"

namespace finnsplit {

enum class FrameType : uint8_t {
  kHello = 1,   // handshake: the sender's tensor spec, answered by the receiver's (Hello.h)
  kTensor = 2,  // one densely packed tensor
  kError = 3,   // UTF-8 message; the sender closes the connection after it
  kBye = 4,     // the sender will send no more frames (clean end of stream)
  kAuth = 5,    // handshake: nonce and proof of the link key (LinkAuth.h)
};

struct FrameHeader {
  uint8_t version = 0;
  FrameType type = FrameType::kTensor;
  uint16_t flags = 0;
  uint64_t seq = 0;
  uint32_t length = 0;
  uint32_t checksum = 0;
};

class Frame {
 public:
  static constexpr uint32_t kMagic = 0x4C505346;  // the bytes "FSPL"
  static constexpr uint8_t kVersion = 2;
  static constexpr uint16_t kTagged = 0x0001;  // flag: a 16-byte tag follows the payload
  static constexpr size_t kHeaderSize = 24;
  static constexpr size_t kChecksummedHeaderBytes = 20;
  static constexpr uint32_t kMaxControlPayload = 4096;  // HELLO, ERROR, BYE

  static const char* typeName(FrameType type);
  // Writes the header of a frame whose checksum covers `payload` (fills in header.checksum).
  static void encode(FrameType type, uint64_t seq, const uint8_t* payload, uint32_t length, uint8_t out[kHeaderSize],
                     uint16_t flags = 0);
  // Validates magic, version, type and flags (only kTagged may be set); not the payload or its length.
  static Status decodeHeader(const uint8_t in[kHeaderSize], FrameHeader* out);
  // Validates the length against what the receiver accepts: exactly `tensorBytes` for TENSOR,
  // at most kMaxControlPayload for the others.
  static Status checkLength(const FrameHeader& header, size_t tensorBytes);
  // CRC-32 of raw header bytes [0, 20) followed by `payload`.
  static uint32_t checksum(const uint8_t header[kHeaderSize], const uint8_t* payload, size_t length);
  static Status verifyChecksum(const uint8_t header[kHeaderSize], const FrameHeader& decoded, const uint8_t* payload);
};

}  // namespace finnsplit
