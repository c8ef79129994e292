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
  if (!st) return st;
  const uint64_t wordBits = static_cast<uint64_t>(wordElems) * bits;
  if (wordBits % 8 == 0) {
    // Words end on byte boundaries: no padding, the two layouts are the same bytes.
    std::memcpy(finn, dense, packedBytes(count, bits, wordElems));
    return Status::ok();
  }
  const size_t wordBytes = static_cast<size_t>((wordBits + 7) / 8);
  std::memset(finn, 0, packedBytes(count, bits, wordElems));
  const int64_t words = count / wordElems;
  for (int64_t w = 0; w < words; ++w) {
    uint8_t* word = finn + w * wordBytes;
    for (int64_t i = 0; i < wordElems; ++i) {
      uint64_t code = readField(dense, (static_cast<uint64_t>(w) * wordElems + i) * bits, bits);
      writeField(word, static_cast<uint64_t>(i) * bits, bits, code);
    }
  }
  return Status::ok();
}

Status FinnPacking::finnToDense(const uint8_t* finn, int64_t count, int bits, int64_t wordElems, uint8_t* dense) {
  Status st = check(count, bits, wordElems);
  if (!st) return st;
  const uint64_t wordBits = static_cast<uint64_t>(wordElems) * bits;
  const size_t denseBytes = static_cast<size_t>((count * bits + 7) / 8);
  if (wordBits % 8 == 0) {
    std::memcpy(dense, finn, denseBytes);
    return Status::ok();
  }
  const size_t wordBytes = static_cast<size_t>((wordBits + 7) / 8);
  std::memset(dense, 0, denseBytes);
  const int64_t words = count / wordElems;
  for (int64_t w = 0; w < words; ++w) {
    const uint8_t* word = finn + w * wordBytes;
    for (int64_t i = 0; i < wordElems; ++i) {
      uint64_t code = readField(word, static_cast<uint64_t>(i) * bits, bits);
      writeField(dense, (static_cast<uint64_t>(w) * wordElems + i) * bits, bits, code);
    }
  }
  return Status::ok();
}

}  // namespace finnsplit
