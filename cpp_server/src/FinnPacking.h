// FinnPacking: converts between the dense wire format (DensePacking) and FINN's folded, per-word
// padded packing that its IODMAs read and write (finn util/data_packing.py,
// finnpy_to_packed_bytearray with reverse_inner=True, reverse_endian=True): the flattened tensor is
// cut into words of `wordElems` elements (the innermost folded dimension: SIMD or PE); element i of
// a word sits at bits [i*b, (i+1)*b) of a little-endian word of ceil(wordElems*b/8) bytes, zero
// padded at the top. Only bits move; values are never decoded.
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "Status.h"

namespace finnsplit {

class FinnPacking {
 public:
  // Bytes of the FINN buffer: (count / wordElems) * ceil(wordElems * bits / 8).
  static size_t packedBytes(int64_t count, int bits, int64_t wordElems);
  // Fails if wordElems does not divide count or the arguments are out of range.
  static Status check(int64_t count, int bits, int64_t wordElems);
  static Status denseToFinn(const uint8_t* dense, int64_t count, int bits, int64_t wordElems, uint8_t* finn);
  static Status finnToDense(const uint8_t* finn, int64_t count, int bits, int64_t wordElems, uint8_t* dense);
};

}  // namespace finnsplit
