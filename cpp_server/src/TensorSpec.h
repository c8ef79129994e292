// TensorSpec: what flows over one link — NHWC shape, datatype and wire packing. Both ends of a
// connection state theirs in the handshake (docs/protocol.md). A cut inside a residual block carries
// several tensors in one frame: a composite spec, its parts each packed densely, one after another
// (docs/protocol.md#multi-tensor-frames).
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
  // Parses "UINT4:1,56,56,128" (the form of the --spec-in/--spec-out flags), or a composite
  // "UINT4:1,8,8,16+INT5:1,8,8,16".
  static Status parse(const std::string& text, TensorSpec* out);
  // Several tensors in one frame, in this order; one part gives that part itself.
  static TensorSpec concat(std::vector<TensorSpec> parts);
  // Parses "1,56,56,128" into positive dimensions.
  static Status parseDims(const std::string& text, std::vector<int64_t>* out);

  // A composite's dtype() and shape() are its first part's: code that packs must walk parts().
  const DataType& dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numElements() const { return finnsplit::numElements(shape_); }
  bool composite() const { return !parts_.empty(); }
  // The tensors of one frame: this spec alone, or a composite's parts.
  std::vector<TensorSpec> parts() const;
  // Bytes of one densely packed frame: ceil(numElements * bits / 8), summed over the parts.
  size_t packedBytes() const;
  // "UINT4 1x56x56x128", the form used in error messages (parts joined by " + ").
  std::string toString() const;
  // "1,56,56,128", the form used in handshakes and program files (parts joined by "+").
  std::string dimsText() const;
  // "UINT4", or "UINT4+INT5" for a composite: the handshake's dtype field.
  std::string dtypeText() const;
  bool operator==(const TensorSpec& other) const {
    return dtype_ == other.dtype_ && shape_ == other.shape_ && parts_ == other.parts_;
  }
  bool operator!=(const TensorSpec& other) const { return !(*this == other); }

 private:
  DataType dtype_;
  std::vector<int64_t> shape_;
  std::vector<TensorSpec> parts_;  // empty unless composite (then at least two)
};

}  // namespace finnsplit
