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
    const int64_t rows = thresholds->shape[0];
    act.channels_ = channels;
    act.steps_ = thresholds->shape[1];
    act.actVal_ = actVal;
    act.values_.resize(static_cast<size_t>(channels * act.steps_));
    act.transposed_.resize(act.values_.size());
    act.sorted_ = true;
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t s = 0; s < act.steps_; ++s) {
        int64_t t = thresholds->values[(rows == 1 ? 0 : c) * act.steps_ + s];
        if (sizeof(A) < sizeof(int64_t)) t = std::min(std::max(t, accRange.lo), accRange.hi + 1);
        act.values_[c * act.steps_ + s] = static_cast<A>(t);
        act.transposed_[s * channels + c] = static_cast<A>(t);
        if (s > 0 && act.values_[c * act.steps_ + s] < act.values_[c * act.steps_ + s - 1]) act.sorted_ = false;
      }
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
    const A* row = values_.data() + channel * steps_;
    int64_t count;
    if (sorted_ && steps_ > kLinearSteps) {
      count = std::upper_bound(row, row + steps_, acc) - row;
    } else {
      count = 0;
      for (int64_t t = 0; t < steps_; ++t) count += acc >= row[t];
    }
    return actVal_ + count;
  }

  // out[i] = apply(c0 + i, acc[i]) for i < n. With few thresholds it makes one pass per
  // threshold across the channels, which vectorises (compare + subtract per lane).
  template <typename Out>
  void applyRow(const A* __restrict acc, int64_t c0, int64_t n, Out* __restrict out) const {
    if (identity_) {
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<Out>(acc[i]);
      return;
    }
    if (sorted_ && steps_ > kLinearSteps) {
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<Out>(apply(c0 + i, acc[i]));
      return;
    }
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<Out>(actVal_);
    for (int64_t t = 0; t < steps_; ++t) {
      const A* __restrict thr = transposed_.data() + t * channels_ + c0;
      for (int64_t i = 0; i < n; ++i) out[i] += static_cast<Out>(acc[i] >= thr[i]);
    }
  }

 private:
  static constexpr int64_t kLinearSteps = 32;  // beyond this, sorted thresholds are binary searched

  bool identity_ = true;
  bool sorted_ = true;
  int64_t channels_ = 0;
  int64_t steps_ = 0;
  int64_t actVal_ = 0;
  std::vector<A> values_;      // [C][T]
  std::vector<A> transposed_;  // [T][C]
};

}  // namespace finnsplit
