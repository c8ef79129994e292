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

size_t TensorSpec::packedBytes() const { return DensePacking::packedBytes(numElements(), dtype_); }

std::string TensorSpec::toString() const {
  std::string text = dtype_.name() + " ";
  for (size_t i = 0; i < shape_.size(); ++i) text += (i ? "x" : "") + std::to_string(shape_[i]);
  return text;
}

std::string TensorSpec::dimsText() const {
  std::string text;
  for (size_t i = 0; i < shape_.size(); ++i) text += (i ? "," : "") + std::to_string(shape_[i]);
  return text;
}

}  // namespace finnsplit
