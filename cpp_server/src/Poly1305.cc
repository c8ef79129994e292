#include "Poly1305.h"

#include <cstring>

namespace finnsplit {
namespace {

inline uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline void store32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
constexpr uint32_t kMask26 = 0x3ffffff;

}  // namespace

Poly1305::Poly1305(const uint8_t key[kKeyBytes]) {
  // r is clamped as RFC 8439 section 2.5 requires
  r_[0] = load32(key + 0) & 0x3ffffff;
  r_[1] = (load32(key + 3) >> 2) & 0x3ffff03;
  r_[2] = (load32(key + 6) >> 4) & 0x3ffc0ff;
  r_[3] = (load32(key + 9) >> 6) & 0x3f03fff;
  r_[4] = (load32(key + 12) >> 8) & 0x00fffff;
  for (int i = 0; i < 4; ++i) pad_[i] = load32(key + 16 + 4 * i);
}

void Poly1305::blocks(const uint8_t* m, size_t length, uint32_t hibit) {
  const uint32_t r0 = r_[0], r1 = r_[1], r2 = r_[2], r3 = r_[3], r4 = r_[4];
  const uint32_t s1 = r1 * 5, s2 = r2 * 5, s3 = r3 * 5, s4 = r4 * 5;
  uint32_t h0 = h_[0], h1 = h_[1], h2 = h_[2], h3 = h_[3], h4 = h_[4];
  for (; length >= 16; m += 16, length -= 16) {
    h0 += load32(m + 0) & kMask26;
    h1 += (load32(m + 3) >> 2) & kMask26;
    h2 += (load32(m + 6) >> 4) & kMask26;
    h3 += (load32(m + 9) >> 6) & kMask26;
    h4 += (load32(m + 12) >> 8) | hibit;
    uint64_t d0 = uint64_t(h0) * r0 + uint64_t(h1) * s4 + uint64_t(h2) * s3 + uint64_t(h3) * s2 + uint64_t(h4) * s1;
    uint64_t d1 = uint64_t(h0) * r1 + uint64_t(h1) * r0 + uint64_t(h2) * s4 + uint64_t(h3) * s3 + uint64_t(h4) * s2;
    uint64_t d2 = uint64_t(h0) * r2 + uint64_t(h1) * r1 + uint64_t(h2) * r0 + uint64_t(h3) * s4 + uint64_t(h4) * s3;
    uint64_t d3 = uint64_t(h0) * r3 + uint64_t(h1) * r2 + uint64_t(h2) * r1 + uint64_t(h3) * r0 + uint64_t(h4) * s4;
    uint64_t d4 = uint64_t(h0) * r4 + uint64_t(h1) * r3 + uint64_t(h2) * r2 + uint64_t(h3) * r1 + uint64_t(h4) * r0;
    uint32_t c = static_cast<uint32_t>(d0 >> 26);
    h0 = static_cast<uint32_t>(d0) & kMask26;
    d1 += c;
    c = static_cast<uint32_t>(d1 >> 26);
    h1 = static_cast<uint32_t>(d1) & kMask26;
    d2 += c;
    c = static_cast<uint32_t>(d2 >> 26);
    h2 = static_cast<uint32_t>(d2) & kMask26;
    d3 += c;
    c = static_cast<uint32_t>(d3 >> 26);
    h3 = static_cast<uint32_t>(d3) & kMask26;
    d4 += c;
    c = static_cast<uint32_t>(d4 >> 26);
    h4 = static_cast<uint32_t>(d4) & kMask26;
    h0 += c * 5;
    c = h0 >> 26;
    h0 &= kMask26;
    h1 += c;
  }
  h_[0] = h0;
  h_[1] = h1;
  h_[2] = h2;
  h_[3] = h3;
  h_[4] = h4;
}

void Poly1305::update(const uint8_t* data, size_t length) {
  if (buffered_ > 0) {
    size_t take = 16 - buffered_ < length ? 16 - buffered_ : length;
    std::memcpy(buffer_ + buffered_, data, take);
    buffered_ += take;
    data += take;
    length -= take;
    if (buffered_ < 16) return;
    blocks(buffer_, 16, 1u << 24);
    buffered_ = 0;
  }
  size_t whole = length & ~size_t(15);
  if (whole) blocks(data, whole, 1u << 24);
  std::memcpy(buffer_, data + whole, length - whole);
  buffered_ = length - whole;
}

void Poly1305::finish(uint8_t tag[kTagBytes]) {
  if (buffered_ > 0) {  // the last partial block, with its 1 byte appended (hibit 0)
    buffer_[buffered_] = 1;
    std::memset(buffer_ + buffered_ + 1, 0, 16 - buffered_ - 1);
    blocks(buffer_, 16, 0);
  }
  uint32_t h0 = h_[0], h1 = h_[1], h2 = h_[2], h3 = h_[3], h4 = h_[4];
  uint32_t c = h1 >> 26;
  h1 &= kMask26;
  h2 += c;
  c = h2 >> 26;
  h2 &= kMask26;
  h3 += c;
  c = h3 >> 26;
  h3 &= kMask26;
  h4 += c;
  c = h4 >> 26;
  h4 &= kMask26;
  h0 += c * 5;
  c = h0 >> 26;
  h0 &= kMask26;
  h1 += c;
  // h - p, selected in constant time if h >= p = 2^130 - 5
  uint32_t g0 = h0 + 5;
  c = g0 >> 26;
  g0 &= kMask26;
  uint32_t g1 = h1 + c;
  c = g1 >> 26;
  g1 &= kMask26;
  uint32_t g2 = h2 + c;
  c = g2 >> 26;
  g2 &= kMask26;
  uint32_t g3 = h3 + c;
  c = g3 >> 26;
  g3 &= kMask26;
  uint32_t g4 = h4 + c - (1u << 26);
  uint32_t mask = (g4 >> 31) - 1;
  g0 &= mask;
  g1 &= mask;
  g2 &= mask;
  g3 &= mask;
  g4 &= mask;
  mask = ~mask;
  h0 = (h0 & mask) | g0;
  h1 = (h1 & mask) | g1;
  h2 = (h2 & mask) | g2;
  h3 = (h3 & mask) | g3;
  h4 = (h4 & mask) | g4;
  h0 = h0 | (h1 << 26);
  h1 = (h1 >> 6) | (h2 << 20);
  h2 = (h2 >> 12) | (h3 << 14);
  h3 = (h3 >> 18) | (h4 << 8);
  uint64_t f = uint64_t(h0) + pad_[0];
  store32(tag + 0, static_cast<uint32_t>(f));
  f = uint64_t(h1) + pad_[1] + (f >> 32);
  store32(tag + 4, static_cast<uint32_t>(f));
  f = uint64_t(h2) + pad_[2] + (f >> 32);
  store32(tag + 8, static_cast<uint32_t>(f));
  f = uint64_t(h3) + pad_[3] + (f >> 32);
  store32(tag + 12, static_cast<uint32_t>(f));
}

}  // namespace finnsplit
