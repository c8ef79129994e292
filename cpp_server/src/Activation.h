// Activation: FINN's multi-threshold activation used by MVAU, VVAU and Thresholding:
//   y = ActVal + #{t : acc >= thresholds[channel, t]}   (or y = acc with noActivation=1),
// thresholds of shape (C, T) or (1, T) (one row for every channel). Thresholds are stored in the
// accumulator type A; for A = int32_t they are clamped into [accLo, accHi + 1], which leaves every
// comparison with an accumulator in range unchanged.
// Thread safety: immutable after build(); apply() is const.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "Kernels.h"

namespace finnsplit {

template <typename A>
class Activation {
 public:
  // `thresholds` may be null only when noActivation; `channels` is C.
  static Status build(const ProgramLayer& layer, const ProgramBlob* thresholds, int64_t channels, bool noActivation,
                      int64_t actVal, const ValueRange& accRange, Activation* out, ValueRange* outRange) {
    Activation act;
    act.identity_ = noActivation;
    if (noActivation) {
      *outRange = accRange;
      *out = std::move(act);
      return Status::ok();
    }
    if (!thresholds) return layer.error("needs a thresholds blob (or noActivation=1)");
    if (thresholds->shape.size() != 2 || (thresholds->shape[0] != channels && thresholds->shape[0] != 1)) {
      return layer.error("thresholds must have shape (" + std::to_string(channels) + ", T) or (1, T)");
    }
    act.rows_ = thresholds->shape[0];
    act.steps_ = thresholds->shape[1];
    act.actVal_ = actVal;
    act.values_.resize(thresholds->values.size());
    act.sorted_ = true;
    for (size_t i = 0; i < thresholds->values.size(); ++i) {
      int64_t t = thresholds->values[i];
      if (sizeof(A) < sizeof(int64_t)) t = std::min(std::max(t, accRange.lo), accRange.hi + 1);
      act.values_[i] = static_cast<A>(t);
      if (i % act.steps_ != 0 && act.values_[i] < act.values_[i - 1]) act.sorted_ = false;
    }
    int64_t top;
    if (__builtin_add_overflow(actVal, act.steps_, &top)) return layer.error("ActVal + thresholds overflows");
    *outRange = ValueRange{actVal, top, false};
    *out = std::move(act);
    return Status::ok();
  }

  bool identity() const { return identity_; }

  int64_t apply(int64_t channel, A acc) const {
    if (identity_) return acc;
    const A* row = values_.data() + (rows_ == 1 ? 0 : channel) * steps_;
    int64_t count;
    if (sorted_ && steps_ > 16) {
      count = std::upper_bound(row, row + steps_, acc) - row;
    } else {
      count = 0;
      for (int64_t t = 0; t < steps_; ++t) count += acc >= row[t];
    }
    return actVal_ + count;
  }

 private:
  bool identity_ = true;
  bool sorted_ = true;
  int64_t rows_ = 0;
  int64_t steps_ = 0;
  int64_t actVal_ = 0;
  std::vector<A> values_;
};

}  // namespace finnsplit
