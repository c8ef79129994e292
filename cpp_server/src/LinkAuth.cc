#include "LinkAuth.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace finnsplit {
namespace {

const char kReceiverLabel[] = "finnsplit-link-v2 receiver";
const char kSenderLabel[] = "finnsplit-link-v2 sender";
const char kSessionLabel[] = "finnsplit-link-v2 session";

ByteSpan span(const char* text) { return {reinterpret_cast<const uint8_t*>(text), std::strlen(text)}; }

int hexValue(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

}  // namespace

std::string toHex(const uint8_t* data, size_t length) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (size_t i = 0; i < length; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 15]);
  }
  return out;
}

bool fromHex(const std::string& text, uint8_t* out, size_t length) {
  if (text.size() != length * 2) return false;
  for (size_t i = 0; i < length; ++i) {
    int hi = hexValue(text[2 * i]), lo = hexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

Status LinkKey::loadFile(const std::string& path, LinkKey* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::error("cannot open the link key " + path + ": " + std::strerror(errno));
  struct stat st {};
  char text[160] = {};
  ssize_t n = ::fstat(fd, &st) == 0 ? ::read(fd, text, sizeof(text) - 1) : -1;
  ::close(fd);
  if (n < 0) return Status::error("cannot read the link key " + path + ": " + std::strerror(errno));
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    return Status::error("the link key " + path + " is accessible to its group or others: chmod 600 it");
  }
  std::string hex(text, static_cast<size_t>(n));
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) hex.pop_back();
  LinkKey key;
  if (!fromHex(hex, key.bytes_, kBytes)) return Status::error("the link key " + path + " is not 64 hex digits");
  *out = key;
  return Status::ok();
}

LinkKey LinkKey::fromBytes(const uint8_t bytes[kBytes]) {
  LinkKey key;
  std::memcpy(key.bytes_, bytes, kBytes);
  return key;
}

Nonce Nonce::random() {
  Nonce nonce;
  size_t done = 0;
  while (done < kBytes) {
    ssize_t n = ::getrandom(nonce.bytes + done, kBytes - done, 0);
    if (n > 0) done += static_cast<size_t>(n);
    // EINTR: retry; getrandom cannot fail otherwise once the kernel's pool is initialised
  }
  return nonce;
}

std::string Nonce::hex() const { return toHex(bytes, kBytes); }

bool Nonce::parseHex(const std::string& text, Nonce* out) { return fromHex(text, out->bytes, kBytes); }

HandshakeProofs HandshakeProofs::compute(const LinkKey& key, const Nonce& senderNonce, const Nonce& receiverNonce,
                                         const std::string& senderHello) {
  HandshakeProofs proofs;
  const ByteSpan ns{senderNonce.bytes, Nonce::kBytes}, nr{receiverNonce.bytes, Nonce::kBytes};
  const ByteSpan hello{reinterpret_cast<const uint8_t*>(senderHello.data()), senderHello.size()};
  const ByteSpan receiver[] = {span(kReceiverLabel), ns, nr, hello};
  hmacSha256(key.bytes(), LinkKey::kBytes, receiver, 4, proofs.receiverMac);
  const ByteSpan sender[] = {span(kSenderLabel), ns, nr, hello};
  hmacSha256(key.bytes(), LinkKey::kBytes, sender, 4, proofs.senderMac);
  const ByteSpan session[] = {span(kSessionLabel), ns, nr};
  hmacSha256(key.bytes(), LinkKey::kBytes, session, 3, proofs.sessionKey);
  return proofs;
}

LinkSession::LinkSession(const uint8_t sessionKey[Sha256::kDigestBytes], bool isSender) : isSender_(isSender) {
  std::memcpy(key_, sessionKey, sizeof(key_));
}

void LinkSession::frameKey(uint8_t direction, uint64_t counter, uint8_t out[Poly1305::kKeyBytes]) const {
  uint8_t message[9] = {direction};
  for (int i = 0; i < 8; ++i) message[1 + i] = static_cast<uint8_t>(counter >> (8 * i));
  const ByteSpan part{message, sizeof(message)};
  hmacSha256(key_, sizeof(key_), &part, 1, out);
}

void LinkSession::tagOutgoing(const uint8_t* header, size_t headerLength, const uint8_t* payload, size_t length,
                              uint8_t tag[kTagBytes]) {
  uint8_t key[Poly1305::kKeyBytes];
  frameKey(isSender_ ? 'S' : 'R', sent_++, key);
  Poly1305 mac(key);
  mac.update(header, headerLength);
  if (length) mac.update(payload, length);
  mac.finish(tag);
}

bool LinkSession::verifyIncoming(const uint8_t* header, size_t headerLength, const uint8_t* payload, size_t length,
                                 const uint8_t tag[kTagBytes]) {
  uint8_t key[Poly1305::kKeyBytes];
  frameKey(isSender_ ? 'R' : 'S', received_++, key);
  Poly1305 mac(key);
  mac.update(header, headerLength);
  if (length) mac.update(payload, length);
  uint8_t expected[kTagBytes];
  mac.finish(expected);
  return equalConstantTime(expected, tag, kTagBytes);
}

}  // namespace finnsplit
