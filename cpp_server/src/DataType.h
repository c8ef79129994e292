// DataType: a FINN integer datatype (UINTn, INTn with 1 <= n <= 64, BIPOLAR, BINARY), the same
// names and ranges as core/datatypes.py.
// Thread safety: an immutable value type.
#pragma once

#include <cstdint>
#include <string>

#include "Status.h"

namespace finnsplit {

class DataType {
 public:
  DataType() = default;
  // Parses a FINN name; returns an error naming the text if it is not a known type.
  static Status parse(const std::string& name, DataType* out);

  const std::string& name() const { return name_; }
  int bits() const { return bits_; }
  bool isSigned() const { return signed_; }
  bool isBipolar() const { return bipolar_; }
  // Value range. UINT64's maximum does not fit int64_t: max() saturates at INT64_MAX and
  // fitsInt64() is false for it.
  int64_t min() const { return min_; }
  int64_t max() const { return max_; }
  bool fitsInt64() const { return !(bits_ == 64 && !signed_); }
  bool operator==(const DataType& other) const { return name_ == other.name_; }
  bool operator!=(const DataType& other) const { return !(*this == other); }

 private:
  std::string name_ = "UINT8";
  int bits_ = 8;
  bool signed_ = false;
  bool bipolar_ = false;
  int64_t min_ = 0;
  int64_t max_ = 255;
};

}  // namespace finnsplit
