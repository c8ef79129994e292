// DensePacking: the wire format of tensor payloads (docs/protocol.md, "Tensor payload"): element i
// of the flattened NHWC tensor occupies bits [i*b, (i+1)*b) of a little-endian bit stream, b-bit
// two's complement, BIPOLAR -1/+1 as 0/1, last byte zero padded. Same as core/packing.py.
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "DataType.h"
#include "Status.h"

namespace finnsplit {

class DensePacking {
 public:
  static size_t packedBytes(int64_t count, const DataType& dtype) {
    return static_cast<size_t>((count * dtype.bits() + 7) / 8);
  }
  // Packs `count` values into `out` (packedBytes(count) bytes); fails, naming the first offending
  // element, if a value lies outside dtype's range (then `out` is partly written).
  template <typename T>
  static Status pack(const T* values, int64_t count, const DataType& dtype, uint8_t* out);
  // Unpacks `count` values; fails if dtype's values do not all fit T.
  template <typename T>
  static Status unpack(const uint8_t* in, int64_t count, const DataType& dtype, T* out);
};

}  // namespace finnsplit
