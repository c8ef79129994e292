// Sha256: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the link handshake and the per-frame
// keys of an authenticated link (docs/protocol.md, "Authentication"). Checked against the RFC 4231
// vectors by the self-test.
// Thread safety: a Sha256 object is used by one thread; the free functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>

namespace finnsplit {

class Sha256 {
 public:
  static constexpr size_t kDigestBytes = 32;
  static constexpr size_t kBlockBytes = 64;

  Sha256();
  void update(const uint8_t* data, size_t length);
  void finish(uint8_t out[kDigestBytes]);

 private:
  void compress(const uint8_t block[kBlockBytes]);

  uint32_t state_[8];
  uint8_t buffer_[kBlockBytes];
  size_t buffered_ = 0;
  uint64_t totalBytes_ = 0;
};

// HMAC-SHA256 of the concatenation of `parts` (pointer, length pairs) under `key`.
struct ByteSpan {
  const uint8_t* data;
  size_t length;
};
void hmacSha256(const uint8_t* key, size_t keyLength, const ByteSpan* parts, size_t count,
                uint8_t out[Sha256::kDigestBytes]);

// Constant-time equality of two byte strings of `length` bytes (no early exit on a mismatch).
bool equalConstantTime(const uint8_t* a, const uint8_t* b, size_t length);

}  // namespace finnsplit
