// Hello: the handshake payload (docs/protocol.md, "Handshake"): ASCII tokens
//   FSPL-HELLO role=<sender|receiver> node=<name> dtype=<DT> shape=<d0,d1,..> packing=dense
//              [order=any] [auth=hmac-sha256 nonce=<32 hex digits>]
// Each side states the tensor spec it sends (sender) or expects (receiver); a mismatch is
// answered with an ERROR frame (naming both specs only to an authenticated peer). The sender of an
// authenticated link adds auth and its nonce; AuthMessage is the AUTH frame's payload
//   FSPL-AUTH [nonce=<32 hex digits>] mac=<64 hex digits>
// Thread safety: value type and pure functions.
#pragma once

#include <string>

#include "Status.h"
#include "TensorSpec.h"

namespace finnsplit {

struct Hello {
  std::string role;  // "sender" or "receiver"
  std::string node;  // the peer's name, for messages
  TensorSpec spec;
  std::string packing = "dense";
  std::string order;  // "any": the sender's frames need not increase in sequence (it merges replicas)
  std::string auth;   // "hmac-sha256" when the sender authenticates the link, else empty
  std::string nonce;  // the sender's nonce (hex), with auth

  std::string encode() const;
  static Status parse(const char* data, size_t length, Hello* out);
  // "" if `peer` (what the other side sends) matches `expected`, else the mis-wiring message, e.g.
  // "peer sends UINT4 1x56x56x128 but this server expects UINT4 1x28x28x256".
  static std::string mismatch(const Hello& peer, const TensorSpec& expected, const std::string& selfRole);
};

struct AuthMessage {
  std::string nonce;  // the receiver's nonce (hex); empty in the sender's AUTH
  std::string mac;    // 64 hex digits

  std::string encode() const;
  static Status parse(const char* data, size_t length, bool withNonce, AuthMessage* out);
};

}  // namespace finnsplit
