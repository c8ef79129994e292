// LinkAuth: authentication of a data-plane link (docs/protocol.md, "Authentication").
// Every link of one deployment shares a 32-byte key (LinkKey, handed to each board's agent with its
// run command). The handshake proves both ends hold it: HMAC-SHA256 over fresh 16-byte nonces from
// both sides and the sender's HELLO. After it, every frame carries a Poly1305 tag under a key of
// its own, HMAC-SHA256(session key, direction, frame counter), so frames cannot be forged,
// replayed, reordered or moved to another connection.
// Thread safety: LinkKey is immutable after load; a LinkSession belongs to one connection's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "Poly1305.h"
#include "Sha256.h"
#include "Status.h"

namespace finnsplit {

class LinkKey {
 public:
  static constexpr size_t kBytes = 32;
  // Reads 64 hex digits from `path`; refuses a file its group or others may access.
  static Status loadFile(const std::string& path, LinkKey* out);
  static LinkKey fromBytes(const uint8_t bytes[kBytes]);
  const uint8_t* bytes() const { return bytes_; }

 private:
  uint8_t bytes_[kBytes] = {};
};

struct Nonce {
  static constexpr size_t kBytes = 16;
  uint8_t bytes[kBytes] = {};
  static Nonce random();  // getrandom(2)
  std::string hex() const;
  static bool parseHex(const std::string& text, Nonce* out);
};

// The two proofs of the handshake and the session key, all from (key, sender nonce, receiver nonce,
// the sender's HELLO payload).
struct HandshakeProofs {
  uint8_t receiverMac[Sha256::kDigestBytes];
  uint8_t senderMac[Sha256::kDigestBytes];
  uint8_t sessionKey[Sha256::kDigestBytes];
  static HandshakeProofs compute(const LinkKey& key, const Nonce& senderNonce, const Nonce& receiverNonce,
                                 const std::string& senderHello);
};

class LinkSession {
 public:
  static constexpr size_t kTagBytes = Poly1305::kTagBytes;
  // `isSender`: this end is the link's sender (it tags with direction 'S', verifies 'R').
  LinkSession(const uint8_t sessionKey[Sha256::kDigestBytes], bool isSender);

  // Tag of the next frame this end sends: Poly1305 over the 24 header bytes and the payload.
  void tagOutgoing(const uint8_t* header, size_t headerLength, const uint8_t* payload, size_t length,
                   uint8_t tag[kTagBytes]);
  // Whether `tag` is the peer's tag of its next frame; the counter advances either way.
  bool verifyIncoming(const uint8_t* header, size_t headerLength, const uint8_t* payload, size_t length,
                      const uint8_t tag[kTagBytes]);

 private:
  void frameKey(uint8_t direction, uint64_t counter, uint8_t out[Poly1305::kKeyBytes]) const;

  uint8_t key_[Sha256::kDigestBytes];
  bool isSender_;
  uint64_t sent_ = 0;
  uint64_t received_ = 0;
};

std::string toHex(const uint8_t* data, size_t length);
bool fromHex(const std::string& text, uint8_t* out, size_t length);

}  // namespace finnsplit
