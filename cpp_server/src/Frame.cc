#include "Frame.h"

#include <cstdio>

#include "Crc32.h"

namespace finnsplit {
namespace {

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

const char* Frame::typeName(FrameType type) {
  switch (type) {
    case FrameType::kHello: return "HELLO";
    case FrameType::kTensor: return "TENSOR";
    case FrameType::kError: return "ERROR";
    case FrameType::kBye: return "BYE";
    case FrameType::kAuth: return "AUTH";
  }
  return "UNKNOWN";
}

void Frame::encode(FrameType type, uint64_t seq, const uint8_t* payload, uint32_t length, uint8_t out[kHeaderSize],
                   uint16_t flags) {
  put32(out, kMagic);
  out[4] = kVersion;
  out[5] = static_cast<uint8_t>(type);
  put16(out + 6, flags);
  put64(out + 8, seq);
  put32(out + 16, length);
  // A tagged frame's payload is protected by its tag: the checksum covers the header alone (one
  // pass over the payload fewer on each side of an authenticated link).
  put32(out + 20, checksum(out, payload, (flags & kTagged) ? 0 : length));
}

Status Frame::decodeHeader(const uint8_t in[kHeaderSize], FrameHeader* out) {
  uint32_t magic = get32(in);
  if (magic != kMagic) {
    char text[96];
    std::snprintf(text, sizeof(text), "bad magic 0x%08x (not a finnsplit frame; expected \"FSPL\")", magic);
    return Status::error(text);
  }
  if (in[4] != kVersion) {
    return Status::error("protocol version " + std::to_string(in[4]) + " is not supported (this build speaks " +
                         std::to_string(kVersion) + ")");
  }
  uint8_t type = in[5];
  if (type < static_cast<uint8_t>(FrameType::kHello) || type > static_cast<uint8_t>(FrameType::kAuth)) {
    return Status::error("unknown frame type " + std::to_string(type));
  }
  uint16_t flags = get16(in + 6);
  if (flags & ~kTagged) return Status::error("reserved flags 0x" + std::to_string(flags) + " set");
  out->version = in[4];
  out->type = static_cast<FrameType>(type);
  out->flags = flags;
  out->seq = get64(in + 8);
  out->length = get32(in + 16);
  out->checksum = get32(in + 20);
  return Status::ok();
}

Status Frame::checkLength(const FrameHeader& header, size_t tensorBytes) {
  if (header.type == FrameType::kTensor) {
    if (header.length != tensorBytes) {
      return Status::error(std::string(header.length > tensorBytes ? "oversized" : "undersized") +
                           " TENSOR frame: payload of " + std::to_string(header.length) + " bytes, the agreed spec packs to " +
                           std::to_string(tensorBytes));
    }
    return Status::ok();
  }
  if (header.length > kMaxControlPayload) {
    return Status::error(std::string("oversized ") + typeName(header.type) + " frame: " +
                         std::to_string(header.length) + " bytes (limit " + std::to_string(kMaxControlPayload) + ")");
  }
  return Status::ok();
}

uint32_t Frame::checksum(const uint8_t header[kHeaderSize], const uint8_t* payload, size_t length) {
  uint32_t crc = crc32Update(0, header, kChecksummedHeaderBytes);
  return length ? crc32Update(crc, payload, length) : crc;
}

Status Frame::verifyChecksum(const uint8_t header[kHeaderSize], const FrameHeader& decoded, const uint8_t* payload) {
  uint32_t actual = checksum(header, payload, (decoded.flags & kTagged) ? 0 : decoded.length);
  if (actual != decoded.checksum) {
    char text[128];
    std::snprintf(text, sizeof(text), "checksum mismatch in %s frame seq %llu (header says 0x%08x, data gives 0x%08x)",
                  typeName(decoded.type), static_cast<unsigned long long>(decoded.seq), decoded.checksum, actual);
    return Status::error(text);
  }
  return Status::ok();
}

}  // namespace finnsplit
