// libFuzzer target for the frame parser: everything a peer can send before and after the
// handshake — a byte stream cut into headers and payloads, HELLO and AUTH payloads, and tagged
// frames checked against a link session (program files: ProgramParserFuzz.cc).
// Run: frame_fuzzer -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "Frame.h"
#include "Hello.h"
#include "LinkAuth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace finnsplit;
  // The stream as the receiver walks it: header, length check, payload, checksum, HELLO parse.
  size_t pos = 0;
  while (pos + Frame::kHeaderSize <= size) {
    FrameHeader header;
    if (!Frame::decodeHeader(data + pos, &header)) break;
    const uint8_t* raw = data + pos;
    pos += Frame::kHeaderSize;
    if (!Frame::checkLength(header, 64)) break;
    if (header.length > size - pos) break;  // truncated: the receiver drops the connection
    const uint8_t* payload = data + pos;
    pos += header.length;
    // Checksums are verified, but a fuzzer rarely forges a CRC: parse HELLOs regardless.
    (void)Frame::verifyChecksum(raw, header, payload);
    if (header.flags & Frame::kTagged) {
      // A tag that does not follow is a truncated frame; one that does is verified (and, from a
      // fuzzer, refused) like any frame of an authenticated link.
      if (LinkSession::kTagBytes > size - pos) break;
      static const uint8_t kSession[Sha256::kDigestBytes] = {7};
      LinkSession session(kSession, false);
      (void)session.verifyIncoming(raw, Frame::kHeaderSize, payload, header.length, data + pos);
      pos += LinkSession::kTagBytes;
    }
    if (header.type == FrameType::kAuth) {
      AuthMessage message;
      for (bool withNonce : {true, false}) {
        if (AuthMessage::parse(reinterpret_cast<const char*>(payload), header.length, withNonce, &message)) {
          Nonce nonce;
          uint8_t mac[Sha256::kDigestBytes];
          (void)Nonce::parseHex(message.nonce, &nonce);
          (void)fromHex(message.mac, mac, sizeof(mac));
        }
      }
    }
    if (header.type == FrameType::kHello) {
      Hello hello;
      if (Hello::parse(reinterpret_cast<const char*>(payload), header.length, &hello)) {
        TensorSpec expected(hello.spec.dtype(), {1, 2, 2, 3});
        (void)Hello::mismatch(hello, expected, "server");
        (void)hello.encode();
      }
    }
  }
  // Any bytes as a HELLO payload directly.
  Hello hello;
  (void)Hello::parse(reinterpret_cast<const char*>(data), size, &hello);
  return 0;
}
