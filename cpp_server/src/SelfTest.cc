#include "SelfTest.h"

#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "BufferPool.h"
#include "Connection.h"
#include "Crc32.h"
#include "DelayBackend.h"
#include "DensePacking.h"
#include "Emulator.h"
#include "FinnPacking.h"
#include "Frame.h"
#include "Hello.h"
#include "LinkAuth.h"
#include "Log.h"
#include "Poly1305.h"
#include "Program.h"
#include "Server.h"
#include "Sha256.h"

namespace finnsplit {
namespace {

struct Check {
  const char* name;
  std::function<std::string()> body;  // "" on success, else what failed
};

std::string crc() {
  const char text[] = "123456789";
  uint32_t c = crc32Update(0, text, 9);
  if (c != 0xCBF43926u) return "CRC-32 of 123456789 is wrong";
  if (crc32Update(crc32Update(0, text, 4), text + 4, 5) != c) return "CRC-32 does not chain";
  return "";
}

std::string densePacking() {
  DataType u4, i3, bip;
  DataType::parse("UINT4", &u4);
  DataType::parse("INT3", &i3);
  DataType::parse("BIPOLAR", &bip);
  int32_t v[3] = {1, 2, 3};
  uint8_t out[2];
  DensePacking::pack(v, 3, u4, out);
  if (out[0] != 0x21 || out[1] != 0x03) return "UINT4 [1,2,3] must pack to 21 03";
  int32_t s[3] = {-1, 3, -4};  // codes 7, 3, 4 -> bits 111 110 001 -> 0b00_011_111 0b1 = 0x1F 0x01
  DensePacking::pack(s, 3, i3, out);
  if (out[0] != 0x1F || out[1] != 0x01) return "INT3 [-1,3,-4] must pack to 1f 01";
  int32_t b[3] = {-1, 1, 1};
  DensePacking::pack(b, 3, bip, out);
  if (out[0] != 0x06) return "BIPOLAR [-1,1,1] must pack to 06";
  if (DensePacking::pack(v, 3, bip, out)) return "BIPOLAR accepted a 2";
  std::mt19937_64 rng(7);
  for (int bits = 1; bits <= 64; ++bits) {
    for (int sign = 0; sign < 2; ++sign) {
      DataType dt;
      DataType::parse((sign ? "INT" : "UINT") + std::to_string(bits), &dt);
      if (!dt.fitsInt64()) continue;
      std::vector<int64_t> values(37), back(37);
      for (auto& x : values) {
        uint64_t r = rng();
        uint64_t span = static_cast<uint64_t>(dt.max()) - static_cast<uint64_t>(dt.min());
        x = static_cast<int64_t>(static_cast<uint64_t>(dt.min()) + (span == ~uint64_t{0} ? r : r % (span + 1)));
      }
      std::vector<uint8_t> packed(DensePacking::packedBytes(37, dt));
      if (!DensePacking::pack(values.data(), 37, dt, packed.data())) return "pack failed for " + dt.name();
      DensePacking::unpack(packed.data(), 37, dt, back.data());
      if (values != back) return "round trip failed for " + dt.name();
    }
  }
  return "";
}

std::string finnPacking() {
  // UINT3, 5 per word: 15 bits -> 2-byte words; dense [1..5] = bits 001 010 011 100 101.
  uint8_t dense[4] = {};
  DataType u3;
  DataType::parse("UINT3", &u3);
  int32_t values[10] = {1, 2, 3, 4, 5, 7, 6, 5, 4, 3};
  DensePacking::pack(values, 10, u3, dense);
  uint8_t finn[4];
  FinnPacking::denseToFinn(dense, 10, 3, 5, finn);
  uint32_t word0 = finn[0] | (finn[1] << 8);
  uint32_t expect0 = 1 | (2 << 3) | (3 << 6) | (4 << 9) | (5 << 12);
  if (word0 != expect0) return "first FINN word is wrong";
  uint32_t word1 = finn[2] | (finn[3] << 8);
  uint32_t expect1 = 7 | (6 << 3) | (5 << 6) | (4 << 9) | (3 << 12);
  if (word1 != expect1) return "second FINN word is wrong";
  uint8_t back[4] = {};
  FinnPacking::finnToDense(finn, 10, 3, 5, back);
  if (std::memcmp(back, dense, 4) != 0) return "FINN -> dense round trip failed";
  if (FinnPacking::check(10, 3, 4)) return "accepted a word size that does not divide the tensor";
  return "";
}

std::string framing() {
  uint8_t payload[5] = {1, 2, 3, 4, 5};
  uint8_t header[Frame::kHeaderSize];
  Frame::encode(FrameType::kTensor, 42, payload, 5, header);
  if (std::memcmp(header, "FSPL", 4) != 0) return "magic bytes are not FSPL";
  FrameHeader h;
  if (!Frame::decodeHeader(header, &h) || h.seq != 42 || h.length != 5) return "decode mismatch";
  if (!Frame::verifyChecksum(header, h, payload)) return "checksum rejected a good frame";
  payload[2] ^= 1;
  if (Frame::verifyChecksum(header, h, payload)) return "checksum accepted a corrupted frame";
  if (!Frame::checkLength(h, 5) || Frame::checkLength(h, 4)) return "length check wrong";
  header[4] = 9;
  if (Frame::decodeHeader(header, &h)) return "accepted version 9";
  header[4] = Frame::kVersion;
  header[5] = 77;
  if (Frame::decodeHeader(header, &h)) return "accepted type 77";
  return "";
}

std::string hello() {
  Hello a;
  a.role = "sender";
  a.node = "board 0";
  TensorSpec::parse("UINT4:1,56,56,128", &a.spec);
  std::string text = a.encode();
  Hello b;
  if (!Hello::parse(text.data(), text.size(), &b)) return "cannot parse own HELLO";
  if (b.spec != a.spec || b.role != "sender" || b.node != "board_0") return "HELLO round trip changed fields";
  TensorSpec expected;
  TensorSpec::parse("UINT4:1,28,28,256", &expected);
  std::string msg = Hello::mismatch(b, expected, "server");
  if (msg != "peer sends UINT4 1x56x56x128 but this server expects UINT4 1x28x28x256") return "mismatch text: " + msg;
  if (Hello::parse("FSPL-HELLO role=sender", 22, &b)) return "accepted a HELLO without spec";
  return "";
}

// A small program: FMPadding -> SWG 3x3 -> VVAU (thresholds) -> MVAU (thresholds) -> MVAU (no act).
std::vector<uint8_t> sampleProgram(std::vector<std::vector<int64_t>>* params) {
  std::mt19937 rng(3);
  auto rand = [&](int lo, int hi) { return static_cast<int64_t>(lo + static_cast<int>(rng() % (hi - lo + 1))); };
  std::vector<int64_t> dw(6 * 9), thr1(6 * 3), w2(6 * 20), thr2(20 * 3), w3(20 * 5);
  for (auto& v : dw) v = rand(-8, 7);
  for (int c = 0; c < 6; ++c) {
    int64_t t = rand(-40, 0);
    for (int s = 0; s < 3; ++s) thr1[c * 3 + s] = t += rand(1, 30);
  }
  for (auto& v : w2) v = rand(-2, 1);
  for (int c = 0; c < 20; ++c) {
    int64_t t = rand(-10, 0);
    for (int s = 0; s < 3; ++s) thr2[c * 3 + s] = t += rand(1, 6);
  }
  for (auto& v : w3) v = rand(-128, 127);
  *params = {dw, thr1, w2, thr2, w3};
  std::string header = "FINNSPLIT-PROGRAM 1\ngraph name=selftest layers=5 blobs=5\n"
      "input name=x shape=1,5,5,6 dtype=UINT4\noutput name=t5 shape=1,5,5,5 dtype=INT32\n"
      "layer FMPadding name=pad in=x out=t1 out_shape=1,7,7,6 out_dtype=UINT4 Padding=1,1,1,1\n"
      "layer ConvolutionInputGenerator name=swg in=t1 out=t2 out_shape=1,5,5,54 out_dtype=UINT4 ConvKernelDim=3 "
      "Stride=1 Dilation=1 OFMDim=5,5 IFMDim=7,7\n"
      "layer VVAU name=dw in=t2 out=t3 out_shape=1,5,5,6 out_dtype=UINT2 noActivation=0 ActVal=0 weights=0 "
      "thresholds=1\n"
      "layer MVAU name=pw in=t3 out=t4 out_shape=1,5,5,20 out_dtype=INT2 MW=6 MH=20 noActivation=0 ActVal=-1 "
      "weights=2 thresholds=3\n"
      "layer MVAU name=fc in=t4 out=t5 out_shape=1,5,5,5 out_dtype=INT32 MW=20 MH=5 noActivation=1 weights=4\n";
  std::vector<std::vector<uint8_t>> blobs;
  const char* shapes[5] = {"6,9", "6,3", "6,20", "20,3", "20,5"};
  size_t offset = 0;
  for (int b = 0; b < 5; ++b) {
    std::vector<uint8_t> bytes;
    for (int64_t v : (*params)[b]) {
      for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i)));
    }
    char line[160];
    std::snprintf(line, sizeof(line), "blob id=%d dtype=int64 shape=%s offset=%zu nbytes=%zu crc32=%08x\n", b,
                  shapes[b], offset, bytes.size(), crc32Update(0, bytes.data(), bytes.size()));
    header += line;
    bytes.resize((bytes.size() + 63) / 64 * 64, 0);
    offset += bytes.size();
    blobs.push_back(bytes);
  }
  header += "end\n";
  std::vector<uint8_t> file(header.begin(), header.end());
  file.resize((file.size() + 63) / 64 * 64, 0);
  for (const auto& b : blobs) file.insert(file.end(), b.begin(), b.end());
  return file;
}

// The same network written as plain loops, independent of the kernels.
std::vector<int64_t> naiveReference(const std::vector<int64_t>& x, const std::vector<std::vector<int64_t>>& p) {
  auto at = [&](int y, int xx, int c) -> int64_t {
    return (y < 0 || y >= 5 || xx < 0 || xx >= 5) ? 0 : x[(y * 5 + xx) * 6 + c];
  };
  std::vector<int64_t> t3(25 * 6), t4(25 * 20), t5(25 * 5);
  for (int pix = 0; pix < 25; ++pix) {
    int oy = pix / 5, ox = pix % 5;
    for (int c = 0; c < 6; ++c) {
      int64_t acc = 0;
      for (int k = 0; k < 9; ++k) acc += at(oy + k / 3 - 1, ox + k % 3 - 1, c) * p[0][c * 9 + k];
      int64_t y = 0;
      for (int s = 0; s < 3; ++s) y += acc >= p[1][c * 3 + s];
      t3[pix * 6 + c] = y;
    }
    for (int j = 0; j < 20; ++j) {
      int64_t acc = 0;
      for (int i = 0; i < 6; ++i) acc += t3[pix * 6 + i] * p[2][i * 20 + j];
      int64_t y = -1;
      for (int s = 0; s < 3; ++s) y += acc >= p[3][j * 3 + s];
      t4[pix * 20 + j] = y;
    }
    for (int j = 0; j < 5; ++j) {
      int64_t acc = 0;
      for (int i = 0; i < 20; ++i) acc += t4[pix * 20 + i] * p[4][i * 5 + j];
      t5[pix * 5 + j] = acc;
    }
  }
  return t5;
}

std::string emulator() {
  std::vector<std::vector<int64_t>> params;
  std::vector<uint8_t> file = sampleProgram(&params);
  Program program;
  Status st = Program::parse(file.data(), file.size(), "selftest", &program);
  if (!st) return st.message();
  std::unique_ptr<Emulator> emu;
  st = Emulator::build(program, &emu);
  if (!st) return st.message();
  std::mt19937 rng(11);
  std::vector<int64_t> x(150);
  for (auto& v : x) v = rng() % 16;
  std::vector<uint8_t> in(emu->inputSpec().packedBytes()), out(emu->outputSpec().packedBytes());
  DensePacking::pack(x.data(), 150, emu->inputSpec().dtype(), in.data());
  st = emu->run(in.data(), out.data());
  if (!st) return st.message();
  std::vector<int64_t> got(125);
  DensePacking::unpack(out.data(), 125, emu->outputSpec().dtype(), got.data());
  if (got != naiveReference(x, params)) return "emulator output differs from the naive reference";
  file[file.size() - (params[4].size() * 8 + 63) / 64 * 64] ^= 1;  // first byte of the last blob
  if (Program::parse(file.data(), file.size(), "selftest", &program)) return "accepted a corrupted blob";
  return "";
}

std::string loopbackPipeline() {
  // A server with a zero-delay backend between this test's sender and its result listener.
  TensorSpec spec;
  TensorSpec::parse("UINT4:1,3,3,5", &spec);
  TcpSocket results;
  Status st = TcpSocket::listenOn("127.0.0.1", 0, &results);
  if (!st) return st.message();
  ServerConfig config;
  config.listenHost = "127.0.0.1";
  config.next = {NextHop{"127.0.0.1", results.localPort()}};
  config.node = "selftest";
  config.statsTarget = "none";
  config.queueDepth = 2;
  uint8_t keyBytes[LinkKey::kBytes];
  for (size_t i = 0; i < sizeof(keyBytes); ++i) keyBytes[i] = static_cast<uint8_t>(i * 13 + 1);
  const LinkKey key = LinkKey::fromBytes(keyBytes);
  config.key = &key;  // the whole chain authenticated, as a board runs it
  Server server(config, std::make_unique<DelayBackend>(spec, spec, 0));
  if (!(st = server.start())) return st.message();
  TcpSocket upstreamSocket;
  IoResult io = TcpSocket::connectTo("127.0.0.1", server.port(), 2000, nullptr, &upstreamSocket);
  if (!io.ok()) return io.message;
  Connection upstream(std::move(upstreamSocket), 5000, &key);
  bool rejected;
  if (!(st = upstream.connectHandshake(spec, "selftest-client", nullptr, &rejected))) return st.message();
  TcpSocket downSocket;
  io = results.acceptOne(5000, nullptr, &downSocket);
  if (!io.ok()) return "no connection from the server: " + io.message;
  Connection down(std::move(downSocket), 5000, &key);
  Hello peer;
  Connection::HandshakeFailure failure;
  if (!(st = down.acceptHandshake(spec, "selftest-results", "client", &peer, &failure, 5000))) return st.message();
  if (!upstream.authenticated() || !down.authenticated()) return "links not authenticated";
  const size_t bytes = spec.packedBytes();
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    std::vector<uint8_t> frame(bytes, static_cast<uint8_t>(seq * 7));
    frame[bytes - 1] &= 0x0F;
    if (!upstream.writeFrame(FrameType::kTensor, seq, frame.data(), static_cast<uint32_t>(bytes), nullptr).ok()) {
      return "write failed";
    }
    FrameHeader h;
    ReadOutcome out = down.readHeader(&h, nullptr, 5000);
    std::vector<uint8_t> got(bytes);
    if (out.ok()) out = down.readPayload(h, got.data());
    if (!out.ok()) return "reading result: " + out.message;
    if (h.seq != seq || got != frame) return "result " + std::to_string(seq) + " differs";
  }
  server.drain();
  return "";
}

std::string fanOutPipeline() {
  // A server fanning out to two next hops (a replicated next stage): frames alternate between them,
  // both links say order=any; when one hop dies, every later frame goes to the other.
  TensorSpec spec;
  TensorSpec::parse("UINT4:1,3,3,5", &spec);
  TcpSocket listeners[2];
  Status st;
  for (TcpSocket& l : listeners) {
    if (!(st = TcpSocket::listenOn("127.0.0.1", 0, &l))) return st.message();
  }
  uint8_t keyBytes[LinkKey::kBytes];
  for (size_t i = 0; i < sizeof(keyBytes); ++i) keyBytes[i] = static_cast<uint8_t>(i * 7 + 3);
  const LinkKey key = LinkKey::fromBytes(keyBytes);
  ServerConfig config;
  config.listenHost = "127.0.0.1";
  config.next = {NextHop{"127.0.0.1", listeners[0].localPort()}, NextHop{"127.0.0.1", listeners[1].localPort()}};
  config.anyOrder = true;
  config.node = "selftest-fanout";
  config.statsTarget = "none";
  config.key = &key;
  Server server(config, std::make_unique<DelayBackend>(spec, spec, 0));
  if (!(st = server.start())) return st.message();
  std::unique_ptr<Connection> down[2];
  for (int r = 0; r < 2; ++r) {  // the sender connects to its hops in order
    TcpSocket socket;
    IoResult io = listeners[r].acceptOne(5000, nullptr, &socket);
    if (!io.ok()) return "no connection to next hop " + std::to_string(r) + ": " + io.message;
    down[r] = std::make_unique<Connection>(std::move(socket), 5000, &key);
    Hello peer;
    Connection::HandshakeFailure failure;
    if (!(st = down[r]->acceptHandshake(spec, "replica", "server", &peer, &failure, 5000))) return st.message();
    if (peer.order != "any") return "fan-out link without order=any";
  }
  TcpSocket upstreamSocket;
  IoResult io = TcpSocket::connectTo("127.0.0.1", server.port(), 2000, nullptr, &upstreamSocket);
  if (!io.ok()) return io.message;
  Connection upstream(std::move(upstreamSocket), 5000, &key);
  bool rejected;
  if (!(st = upstream.connectHandshake(spec, "selftest-client", nullptr, &rejected))) return st.message();
  const size_t bytes = spec.packedBytes();
  auto roundTrip = [&](uint64_t seq, int hop) -> std::string {
    std::vector<uint8_t> frame(bytes, static_cast<uint8_t>(seq * 5));
    frame[bytes - 1] &= 0x0F;
    if (!upstream.writeFrame(FrameType::kTensor, seq, frame.data(), static_cast<uint32_t>(bytes), nullptr).ok()) {
      return "write failed";
    }
    FrameHeader h;
    std::vector<uint8_t> got(bytes);
    ReadOutcome out = down[hop]->readHeader(&h, nullptr, 5000);
    if (out.ok()) out = down[hop]->readPayload(h, got.data());
    if (!out.ok()) return "frame " + std::to_string(seq) + " not on hop " + std::to_string(hop) + ": " + out.message;
    if (h.seq != seq || got != frame) return "frame " + std::to_string(seq) + " differs";
    return "";
  };
  std::string problem;
  for (uint64_t seq = 1; seq <= 10 && problem.empty(); ++seq) problem = roundTrip(seq, static_cast<int>((seq - 1) % 2));
  if (!problem.empty()) return "round robin: " + problem;
  down[1].reset();  // hop 1 dies: its connection and its listener go away
  listeners[1].close();
  for (uint64_t seq = 11; seq <= 16 && problem.empty(); ++seq) problem = roundTrip(seq, 0);
  if (!problem.empty()) return "after a hop died: " + problem;
  server.drain();
  return "";
}

std::string crypto() {
  // RFC 4231 test case 2, the FIPS 180-2 "abc" vector and RFC 8439 section 2.5.2
  const char* jefe = "Jefe";
  const char* what = "what do ya want for nothing?";
  ByteSpan part{reinterpret_cast<const uint8_t*>(what), std::strlen(what)};
  uint8_t digest[Sha256::kDigestBytes];
  hmacSha256(reinterpret_cast<const uint8_t*>(jefe), 4, &part, 1, digest);
  if (toHex(digest, 32) != "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") return "HMAC-SHA256";
  Sha256 sha;
  sha.update(reinterpret_cast<const uint8_t*>("abc"), 3);
  sha.finish(digest);
  if (toHex(digest, 32) != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") return "SHA-256";
  uint8_t key[32];
  fromHex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b", key, 32);
  const char* text = "Cryptographic Forum Research Group";
  Poly1305 mac(key);
  mac.update(reinterpret_cast<const uint8_t*>(text), 10);  // in two pieces: the buffering path too
  mac.update(reinterpret_cast<const uint8_t*>(text) + 10, std::strlen(text) - 10);
  uint8_t tag[16];
  mac.finish(tag);
  if (toHex(tag, 16) != "a8061dc1305136c6c22b8baf0c0127a9") return "Poly1305";
  return "";
}

}  // namespace

int SelfTest::run() {
  logConfigure("selftest", LogLevel::kWarn);
  const Check checks[] = {
      {"crc32", crc},         {"dense-packing", densePacking}, {"finn-packing", finnPacking},
      {"framing", framing},   {"hello", hello},                {"emulator", emulator},
      {"crypto", crypto},     {"loopback-pipeline", loopbackPipeline}, {"fan-out-pipeline", fanOutPipeline},
  };
  int failed = 0;
  for (const Check& check : checks) {
    std::string problem = check.body();
    std::printf("%-20s %s%s\n", check.name, problem.empty() ? "ok" : "FAILED: ", problem.c_str());
    failed += !problem.empty();
  }
  std::printf("self-test: %s (%d of %zu checks failed)\n", failed ? "FAILED" : "passed", failed,
              sizeof(checks) / sizeof(checks[0]));
  std::fflush(stdout);
  return failed ? 1 : 0;
}

}  // namespace finnsplit
