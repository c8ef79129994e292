// Poly1305: the one-time authenticator of RFC 8439 (poly1305-donna's 26-bit limbs, portable C++).
// An authenticated link tags every frame with it under a key used for that frame alone
// (LinkAuth.h); checked against RFC 8439's vector by the self-test and against Python's
// `cryptography` by the protocol tests.
// Thread safety: one object per message, used by one thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace finnsplit {

class Poly1305 {
 public:
  static constexpr size_t kKeyBytes = 32;
  static constexpr size_t kTagBytes = 16;

  explicit Poly1305(const uint8_t key[kKeyBytes]);
  void update(const uint8_t* data, size_t length);
  void finish(uint8_t tag[kTagBytes]);

 private:
  void blocks(const uint8_t* data, size_t length, uint32_t hibit);

  uint32_t r_[5];
  uint32_t h_[5] = {0, 0, 0, 0, 0};
  uint32_t pad_[4];
  uint8_t buffer_[16] = {};
  size_t buffered_ = 0;
};

}  // namespace finnsplit
