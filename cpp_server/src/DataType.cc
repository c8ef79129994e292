#include "DataType.h"

#include <cctype>
#include <cstdlib>
#include <limits>

namespace finnsplit {

Status DataType::parse(const std::string& rawName, DataType* out) {
  std::string name;
  for (char ch : rawName) name.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  DataType dt;
  dt.name_ = name;
  if (name == "BIPOLAR") {
    dt.bits_ = 1;
    dt.signed_ = true;
    dt.bipolar_ = true;
    dt.min_ = -1;
    dt.max_ = 1;
    *out = dt;
    return Status::ok();
  }
  if (name == "BINARY") {
    dt.bits_ = 1;
    dt.signed_ = false;
    dt.min_ = 0;
    dt.max_ = 1;
    *out = dt;
    return Status::ok();
  }
  size_t digits = 0;
  if (name.compare(0, 4, "UINT") == 0) {
    dt.signed_ = false;
    digits = 4;
  } else if (name.compare(0, 3, "INT") == 0) {
    dt.signed_ = true;
    digits = 3;
  } else {
    return Status::error("unknown integer datatype '" + rawName + "' (expected UINTn, INTn, BIPOLAR or BINARY)");
  }
  std::string number = name.substr(digits);
  bool numeric = !number.empty() && number.size() <= 2;
  for (char ch : number) numeric = numeric && std::isdigit(static_cast<unsigned char>(ch));
  int bits = numeric ? std::atoi(number.c_str()) : 0;
  if (bits < 1 || bits > 64 || number[0] == '0') {
    return Status::error("unknown integer datatype '" + rawName + "' (bit width must be 1..64)");
  }
  dt.bits_ = bits;
  if (dt.signed_) {
    dt.min_ = bits == 64 ? std::numeric_limits<int64_t>::min() : -(int64_t{1} << (bits - 1));
    dt.max_ = bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << (bits - 1)) - 1;
  } else {
    dt.min_ = 0;
    dt.max_ = bits >= 63 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << bits) - 1;
  }
  *out = dt;
  return Status::ok();
}

}  // namespace finnsplit
