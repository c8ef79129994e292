// TensorSpec: what flows over one link — NHWC shape, datatype and wire packing. Both ends of a
// connection state theirs in the handshake (docs/protocol.md).
// Thread safety: an immutable value type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "DataType.h"
#include "Status.h"

namespace finnsplit {

// Element count of a shape (1 for no dimensions).
int64_t numElements(const std::vector<int64_t>& shape);

class TensorSpec {
 public:
  TensorSpec() = default;
  TensorSpec(DataType dtype, std::vector<int64_t> shape) : dtype_(std::move(dtype)), shape_(std::move(shape)) {}
  // Parses "UINT4:1,56,56,128" (the form of the --spec-in/--spec-out flags).
  static Status parse(const std::string& text, TensorSpec* out);
  // Parses "1,56,56,128" into positive dimensions.
  static Status parseDims(const std::string& text, std::vector<int64_t>* out);

  const DataType& dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numElements() const { return finnsplit::numElements(shape_); }
  // Bytes of one densely packed frame: ceil(numElements * bits / 8).
  size_t packedBytes() const;
  // "UINT4 1x56x56x128", the form used in error messages.
  std::string toString() const;
  // "1,56,56,128", the form used in handshakes and program files.
  std::string dimsText() const;
  bool operator==(const TensorSpec& other) const { return dtype_ == other.dtype_ && shape_ == other.shape_; }
  bool operator!=(const TensorSpec& other) const { return !(*this == other); }

 private:
  DataType dtype_;
  std::vector<int64_t> shape_;
};

}  // namespace finnsplit
