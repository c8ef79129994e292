#include "TensorSpec.h"

#include <cctype>

#include "DensePacking.h"

namespace finnsplit {

Status TensorSpec::parseDims(const std::string& text, std::vector<int64_t>* out) {
  std::vector<int64_t> dims;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    if (item.empty() || item.size() > 12) return Status::error("bad dimension list '" + text + "'");
    int64_t value = 0;
    for (char ch : item) {
      if (!std::isdigit(static_cast<unsigned char>(ch))) return Status::error("bad dimension list '" + text + "'");
      value = value * 10 + (ch - '0');
    }
    if (value <= 0) return Status::error("dimension list '" + text + "' has a non-positive entry");
    dims.push_back(value);
    if (dims.size() > 8) return Status::error("dimension list '" + text + "' has more than 8 entries");
    pos = comma + 1;
  }
  // Guard numElements() against overflow: one frame must stay below 2^40 elements.
  int64_t total = 1;
  for (int64_t d : dims) {
    if (d > (int64_t{1} << 40) / total) return Status::error("dimension list '" + text + "' is too large");
    total *= d;
  }
  *out = std::move(dims);
  return Status::ok();
}

Status TensorSpec::parse(const std::string& text, TensorSpec* out) {
  if (text.find('+') != std::string::npos) {
    std::vector<TensorSpec> parts;
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t plus = text.find('+', pos);
      if (plus == std::string::npos) plus = text.size();
      TensorSpec part;
      Status st = parse(text.substr(pos, plus - pos), &part);
      if (!st) return st;
      parts.push_back(std::move(part));
      if (parts.size() > 16) return Status::error("tensor spec '" + text.substr(0, 80) + "' has more than 16 parts");
      pos = plus + 1;
    }
    *out = concat(std::move(parts));
    return Status::ok();
  }
  size_t colon = text.find(':');
  if (colon == std::string::npos) return Status::error("tensor spec '" + text + "' is not DTYPE:d0,d1,...");
  DataType dtype;
  Status st = DataType::parse(text.substr(0, colon), &dtype);
  if (!st) return st;
  std::vector<int64_t> dims;
  st = parseDims(text.substr(colon + 1), &dims);
  if (!st) return st;
  *out = TensorSpec(dtype, dims);
  return Status::ok();
}

int64_t numElements(const std::vector<int64_t>& shape) {
  int64_t total = 1;
  for (int64_t d : shape) total *= d;
  return total;
}

TensorSpec TensorSpec::concat(std::vector<TensorSpec> parts) {
  if (parts.size() == 1) return parts[0];
  TensorSpec spec = parts.empty() ? TensorSpec() : TensorSpec(parts[0].dtype_, parts[0].shape_);
  spec.parts_ = std::move(parts);
  return spec;
}

std::vector<TensorSpec> TensorSpec::parts() const {
  return composite() ? parts_ : std::vector<TensorSpec>{*this};
}

size_t TensorSpec::packedBytes() const {
  if (!composite()) return DensePacking::packedBytes(numElements(), dtype_);
  size_t total = 0;
  for (const TensorSpec& part : parts_) total += part.packedBytes();
  return total;
}

std::string TensorSpec::dtypeText() const {
  if (!composite()) return dtype_.name();
  std::string text;
  for (size_t i = 0; i < parts_.size(); ++i) text += (i ? "+" : "") + parts_[i].dtype_.name();
  return text;
}

std::string TensorSpec::toString() const {
  if (composite()) {
    std::string text;
    for (size_t i = 0; i < parts_.size(); ++i) text += (i ? " + " : "") + parts_[i].toString();
    return text;
  }
  std::string text = dtype_.name() + " ";
  for (size_t i = 0; i < shape_.size(); ++i) text += (i ? "x" : "") + std::to_string(shape_[i]);
  return text;
}

std::string TensorSpec::dimsText() const {
  if (composite()) {
    std::string text;
    for (size_t i = 0; i < parts_.size(); ++i) text += (i ? "+" : "") + parts_[i].dimsText();
    return text;
  }
  std::string text;
  for (size_t i = 0; i < shape_.size(); ++i) text += (i ? "," : "") + std::to_string(shape_[i]);
  return text;
}

}  // namespace finnsplit
