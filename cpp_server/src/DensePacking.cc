#include "DensePacking.h"

#include <cstring>
#include <limits>
#include <string>

namespace finnsplit {
namespace {

uint64_t maskOf(int bits) { return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1; }

// Appends little-endian bit fields of up to 32 bits to a byte buffer.
class BitWriter {
 public:
  explicit BitWriter(uint8_t* out) : out_(out) {}
  void put(uint64_t code, int bits) {
    if (bits > 32) {
      put(code & 0xFFFFFFFFu, 32);
      put(code >> 32, bits - 32);
      return;
    }
    acc_ |= (code & maskOf(bits)) << used_;
    used_ += bits;
    while (used_ >= 8) {
      *out_++ = static_cast<uint8_t>(acc_);
      acc_ >>= 8;
      used_ -= 8;
    }
  }
  void flush() {
    if (used_ > 0) *out_++ = static_cast<uint8_t>(acc_);
    acc_ = 0;
    used_ = 0;
  }

 private:
  uint8_t* out_;
  uint64_t acc_ = 0;
  int used_ = 0;
};

// Reads little-endian bit fields of up to 64 bits, never past the bytes the fields cover.
class BitReader {
 public:
  explicit BitReader(const uint8_t* in) : in_(in) {}
  uint64_t get(int bits) {
    if (bits > 32) {
      uint64_t low = get(32);
      return low | (get(bits - 32) << 32);
    }
    while (have_ < bits) {
      acc_ |= static_cast<uint64_t>(*in_++) << have_;
      have_ += 8;
    }
    uint64_t code = acc_ & maskOf(bits);
    acc_ >>= bits;
    have_ -= bits;
    return code;
  }

 private:
  const uint8_t* in_;
  uint64_t acc_ = 0;
  int have_ = 0;
};

template <typename T>
Status outOfRange(const T* values, int64_t index, const DataType& dtype) {
  return Status::error("value " + std::to_string(static_cast<long long>(values[index])) + " at element " +
                       std::to_string(index) + " is outside " + dtype.name() + " range [" +
                       std::to_string(dtype.min()) + ", " + std::to_string(dtype.max()) + "]");
}

}  // namespace

template <typename T>
Status DensePacking::pack(const T* values, int64_t count, const DataType& dtype, uint8_t* out) {
  const int bits = dtype.bits();
  const bool bipolar = dtype.isBipolar();
  // Range check: for UINT64 every non-negative int64 fits, the saturated max() is exact enough.
  const int64_t lo = dtype.min();
  const int64_t hi = dtype.max();
  for (int64_t i = 0; i < count; ++i) {
    int64_t v = static_cast<int64_t>(values[i]);
    bool ok = bipolar ? (v == 1 || v == -1) : (v >= lo && v <= hi);
    if (!ok) return outOfRange(values, i, dtype);
  }
  if (bipolar) {
    std::memset(out, 0, packedBytes(count, dtype));
    for (int64_t i = 0; i < count; ++i) {
      if (values[i] > 0) out[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
    }
    return Status::ok();
  }
  if (bits == 8 || bits == 16 || bits == 32 || bits == 64) {
    const int bytes = bits / 8;
    for (int64_t i = 0; i < count; ++i) {
      uint64_t code = static_cast<uint64_t>(static_cast<int64_t>(values[i]));
      for (int b = 0; b < bytes; ++b) out[i * bytes + b] = static_cast<uint8_t>(code >> (8 * b));
    }
    return Status::ok();
  }
  if (bits == 4) {
    int64_t pairs = count / 2;
    for (int64_t i = 0; i < pairs; ++i) {
      out[i] = static_cast<uint8_t>((static_cast<uint32_t>(values[2 * i]) & 0xF) |
                                    ((static_cast<uint32_t>(values[2 * i + 1]) & 0xF) << 4));
    }
    if (count & 1) out[pairs] = static_cast<uint8_t>(static_cast<uint32_t>(values[count - 1]) & 0xF);
    return Status::ok();
  }
  BitWriter writer(out);
  for (int64_t i = 0; i < count; ++i) writer.put(static_cast<uint64_t>(static_cast<int64_t>(values[i])), bits);
  writer.flush();
  return Status::ok();
}

template <typename T>
Status DensePacking::unpack(const uint8_t* in, int64_t count, const DataType& dtype, T* out) {
  if (!dtype.fitsInt64() || dtype.min() < std::numeric_limits<T>::min() || dtype.max() > std::numeric_limits<T>::max()) {
    return Status::error(dtype.name() + " values do not fit this build's " + std::to_string(8 * sizeof(T)) +
                         "-bit storage");
  }
  const int bits = dtype.bits();
  if (dtype.isBipolar()) {
    for (int64_t i = 0; i < count; ++i) out[i] = ((in[i >> 3] >> (i & 7)) & 1) ? T(1) : T(-1);
    return Status::ok();
  }
  const bool sign = dtype.isSigned();
  if (bits == 4) {
    for (int64_t i = 0; i < count; ++i) {
      int32_t code = (in[i >> 1] >> (4 * (i & 1))) & 0xF;
      out[i] = static_cast<T>(sign && code >= 8 ? code - 16 : code);
    }
    return Status::ok();
  }
  if (bits == 8) {
    for (int64_t i = 0; i < count; ++i) out[i] = sign ? static_cast<T>(static_cast<int8_t>(in[i])) : static_cast<T>(in[i]);
    return Status::ok();
  }
  BitReader reader(in);
  const int unused = 64 - bits;
  for (int64_t i = 0; i < count; ++i) {
    uint64_t code = reader.get(bits);
    int64_t value = sign ? static_cast<int64_t>(code << unused) >> unused : static_cast<int64_t>(code);
    out[i] = static_cast<T>(value);
  }
  return Status::ok();
}

template Status DensePacking::pack<int32_t>(const int32_t*, int64_t, const DataType&, uint8_t*);
template Status DensePacking::pack<int64_t>(const int64_t*, int64_t, const DataType&, uint8_t*);
template Status DensePacking::unpack<int32_t>(const uint8_t*, int64_t, const DataType&, int32_t*);
template Status DensePacking::unpack<int64_t>(const uint8_t*, int64_t, const DataType&, int64_t*);

}  // namespace finnsplit
