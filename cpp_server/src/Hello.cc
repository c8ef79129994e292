#include "Hello.h"

#include <cctype>

namespace finnsplit {
namespace {

const char kMagicWord[] = "FSPL-HELLO";

std::string sanitize(const std::string& text) {
  std::string out;
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    out.push_back(std::isgraph(c) && ch != '=' ? ch : '_');
  }
  return out.empty() ? "-" : out.substr(0, 64);
}

std::vector<std::string> splitPlus(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t plus = text.find('+', pos);
    if (plus == std::string::npos) plus = text.size();
    out.push_back(text.substr(pos, plus - pos));
    pos = plus + 1;
  }
  return out;
}

}  // namespace

std::string Hello::encode() const {
  std::string text = std::string(kMagicWord) + " role=" + sanitize(role) + " node=" + sanitize(node) + " dtype=" +
                     spec.dtypeText() + " shape=" + spec.dimsText() + " packing=" + sanitize(packing);
  if (!order.empty()) text += " order=" + sanitize(order);
  if (!auth.empty()) text += " auth=" + sanitize(auth) + " nonce=" + sanitize(nonce);
  return text;
}

std::string AuthMessage::encode() const {
  return std::string("FSPL-AUTH") + (nonce.empty() ? "" : " nonce=" + nonce) + " mac=" + mac;
}

Status AuthMessage::parse(const char* data, size_t length, bool withNonce, AuthMessage* out) {
  std::string text(data, length);
  AuthMessage message;
  size_t pos = 0;
  bool first = true;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    std::string token = text.substr(pos, end - pos);
    pos = end + 1;
    if (first) {
      if (token != "FSPL-AUTH") return Status::error("AUTH payload does not start with FSPL-AUTH");
      first = false;
    } else if (token.compare(0, 6, "nonce=") == 0) {
      message.nonce = token.substr(6);
    } else if (token.compare(0, 4, "mac=") == 0) {
      message.mac = token.substr(4);
    }
  }
  auto hex = [](const std::string& value, size_t digits) {
    if (value.size() != digits) return false;
    for (char ch : value) {
      if (!std::isxdigit(static_cast<unsigned char>(ch))) return false;
    }
    return true;
  };
  if (first || !hex(message.mac, 64) || (withNonce && !hex(message.nonce, 32))) {
    return Status::error("malformed AUTH payload");
  }
  *out = message;
  return Status::ok();
}

Status Hello::parse(const char* data, size_t length, Hello* out) {
  std::string text(data, length);
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (!std::isprint(c)) return Status::error("HELLO payload is not printable ASCII");
  }
  Hello hello;
  std::string dtypeText;
  std::string shapeText;
  bool first = true;
  bool sawPacking = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    std::string token = text.substr(pos, end - pos);
    pos = end + 1;
    if (token.empty()) continue;
    if (first) {
      if (token != kMagicWord) return Status::error("HELLO payload does not start with " + std::string(kMagicWord));
      first = false;
      continue;
    }
    size_t eq = token.find('=');
    if (eq == std::string::npos || eq == 0) return Status::error("HELLO token '" + token.substr(0, 40) + "' is not key=value");
    std::string key = token.substr(0, eq);
    std::string value = token.substr(eq + 1);
    if (key == "role") hello.role = value;
    else if (key == "node") hello.node = value.substr(0, 64);
    else if (key == "dtype") dtypeText = value;
    else if (key == "shape") shapeText = value;
    else if (key == "packing") {
      hello.packing = value;
      sawPacking = true;
    } else if (key == "auth") {
      hello.auth = value.substr(0, 32);
    } else if (key == "nonce") {
      hello.nonce = value.substr(0, 64);
    } else if (key == "order") {
      if (value != "seq" && value != "any") return Status::error("HELLO order must be seq or any");
      hello.order = value;
    }
    // Unknown keys are ignored so a later minor revision can add fields.
  }
  if (first) return Status::error("empty HELLO payload");
  if (hello.role != "sender" && hello.role != "receiver") return Status::error("HELLO without role=sender|receiver");
  if (dtypeText.empty() || shapeText.empty() || !sawPacking) return Status::error("HELLO lacks dtype, shape or packing");
  // a composite frame (several tensors, docs/protocol.md#multi-tensor-frames): "UINT4+INT5", "1,8,8,16+1,8,8,16"
  std::vector<std::string> dtypes = splitPlus(dtypeText);
  std::vector<std::string> shapes = splitPlus(shapeText);
  if (dtypes.size() != shapes.size() || dtypes.size() > 16) return Status::error("HELLO dtype and shape lists differ");
  std::vector<TensorSpec> parts;
  for (size_t i = 0; i < dtypes.size(); ++i) {
    DataType dtype;
    Status st = DataType::parse(dtypes[i], &dtype);
    if (!st) return st.withContext("HELLO dtype");
    std::vector<int64_t> dims;
    st = TensorSpec::parseDims(shapes[i], &dims);
    if (!st) return st.withContext("HELLO shape");
    parts.emplace_back(dtype, dims);
  }
  hello.spec = TensorSpec::concat(std::move(parts));
  *out = hello;
  return Status::ok();
}

std::string Hello::mismatch(const Hello& peer, const TensorSpec& expected, const std::string& selfRole) {
  const char* peerVerb = peer.role == "sender" ? "sends" : "expects";
  const char* selfVerb = peer.role == "sender" ? "expects" : "sends";
  if (peer.packing != "dense") {
    return "peer " + std::string(peerVerb) + " packing '" + peer.packing + "' but this " + selfRole +
           " speaks only dense packing";
  }
  if (peer.spec == expected) return "";
  return "peer " + std::string(peerVerb) + " " + peer.spec.toString() + " but this " + selfRole + " " + selfVerb +
         " " + expected.toString();
}

}  // namespace finnsplit
