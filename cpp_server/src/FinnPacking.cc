#include "FinnPacking.h"

#include <cstring>
#include <string>

namespace finnsplit {
namespace {

// The b-bit field at bit offset `pos` of a little-endian bit stream (b <= 64), reading only the
// bytes the field covers.
uint64_t readField(const uint8_t* data, uint64_t pos, int bits) {
  uint64_t value = 0;
  int got = 0;
  while (got < bits) {
    uint64_t byteIndex = (pos + got) >> 3;
    int shift = static_cast<int>((pos + got) & 7);
    int take = 8 - shift;
    if (take > bits - got) take = bits - got;
    uint64_t chunk = (data[byteIndex] >> shift) & ((1u << take) - 1);
    value |= chunk << got;
    got += take;
  }
  return value;
}

// ORs a b-bit field into a zeroed little-endian bit stream at bit offset `pos`.
void writeField(uint8_t* data, uint64_t pos, int bits, uint64_t value) {
  int put = 0;
  while (put < bits) {
    uint64_t byteIndex = (pos + put) >> 3;
    int shift = static_cast<int>((pos + put) & 7);
    int take = 8 - shift;
    if (take > bits - put) take = bits - put;
    data[byteIndex] |= static_cast<uint8_t>(((value >> put) & ((1u << take) - 1)) << shift);
    put += take;
  }
}

// Moves every element from `src` to `dst`, dense to FINN words if `toFinn`, else back; the
// arguments have passed FinnPacking::check.
void repack(const uint8_t* src, int64_t count, int bits, int64_t wordElems, bool toFinn, uint8_t* dst) {
  const uint64_t wordBits = static_cast<uint64_t>(wordElems) * bits;
  const size_t dstBytes =
      toFinn ? FinnPacking::packedBytes(count, bits, wordElems) : static_cast<size_t>((count * bits + 7) / 8);
  if (wordBits % 8 == 0) {
    // Words end on byte boundaries: no padding, the two layouts are the same bytes.
    std::memcpy(dst, src, dstBytes);
    return;
  }
  const uint64_t wordStride = (wordBits + 7) / 8 * 8;  // bits from one FINN word to the next
  std::memset(dst, 0, dstBytes);
  const int64_t words = count / wordElems;
  for (int64_t w = 0; w < words; ++w) {
    for (int64_t i = 0; i < wordElems; ++i) {
      const uint64_t densePos = (static_cast<uint64_t>(w) * wordElems + i) * bits;
      const uint64_t finnPos = static_cast<uint64_t>(w) * wordStride + static_cast<uint64_t>(i) * bits;
      const uint64_t from = toFinn ? densePos : finnPos;
      const uint64_t to = toFinn ? finnPos : densePos;
      writeField(dst, to, bits, readField(src, from, bits));
    }
  }
}

}  // namespace

size_t FinnPacking::packedBytes(int64_t count, int bits, int64_t wordElems) {
  return static_cast<size_t>((count / wordElems) * ((wordElems * bits + 7) / 8));
}

Status FinnPacking::check(int64_t count, int bits, int64_t wordElems) {
  if (bits < 1 || bits > 64) return Status::error("bit width " + std::to_string(bits) + " is not 1..64");
  if (wordElems < 1 || count < 0 || count % wordElems != 0) {
    return Status::error("FINN word of " + std::to_string(wordElems) + " elements does not divide " +
                         std::to_string(count) + " elements");
  }
  return Status::ok();
}

Status FinnPacking::denseToFinn(const uint8_t* dense, int64_t count, int bits, int64_t wordElems, uint8_t* finn) {
  Status st = check(count, bits, wordElems);
  if (st) repack(dense, count, bits, wordElems, true, finn);
  return st;
}

Status FinnPacking::finnToDense(const uint8_t* finn, int64_t count, int bits, int64_t wordElems, uint8_t* dense) {
  Status st = check(count, bits, wordElems);
  if (st) repack(finn, count, bits, wordElems, false, dense);
  return st;
}

}  // namespace finnsplit
