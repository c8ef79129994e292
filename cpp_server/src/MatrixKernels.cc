// MVAU and VVAU kernels (see Kernels.h). Where the build-time range analysis proves it exact they
// take the fast path: MVAU multiplies int16 operands into int32 accumulators over weights stored
// transposed and zero padded (a dot-product loop compilers turn into pmaddwd / vmlal), blocked so
// a slab of weight rows stays in cache while every pixel streams past it; VVAU accumulates int32
// across channels. Otherwise both fall back to int64 accumulation.
#include <algorithm>
#include <cstring>

#include "Activation.h"
#include "Kernels.h"

namespace finnsplit {
namespace {

constexpr int64_t kLane = 16;               // MVAU rows are padded to a multiple of this
constexpr int64_t kWeightBlockBytes = 32768;  // weight slab kept hot in L1/L2 while pixels stream

struct MatrixAttrs {
  bool noActivation = false;
  int64_t actVal = 0;
};

Status activationAttrs(const ProgramLayer& layer, MatrixAttrs* out) {
  int64_t noAct;
  Status st = layer.intAttrOr("noActivation", 0, &noAct);
  if (!st) return st;
  out->noActivation = noAct != 0;
  return layer.intAttrOr("ActVal", 0, &out->actVal);
}

// Exact interval of sum_i x_i * w_i over x_i in `x`, and the bound on |partial sums|.
struct DotRange {
  ValueRange range{0, 0, false};
  int64_t absBound = 0;
  bool tooWide = false;

  void addTerm(const ValueRange& x, int64_t w) {
    ValueRange term = ValueRange::mul(x, ValueRange{w, w, false});
    ValueRange sum = ValueRange::add(range, term);
    int64_t absTerm = term.maxAbs();
    tooWide = tooWide || term.tooWide || sum.tooWide || __builtin_add_overflow(absBound, absTerm, &absBound);
    range = sum;
  }
};

// Four dot products sharing one weight row: the weight is loaded once per four pixels. GCC turns
// the widening multiply-accumulate into pmaddwd (x86) / vmlal.s16 (NEON). (Splitting the sums into
// explicit lanes defeats that: measured 8x slower.)
inline void dot4(const int16_t* __restrict w, const int16_t* __restrict x0, const int16_t* __restrict x1,
                 const int16_t* __restrict x2, const int16_t* __restrict x3, int64_t n, int32_t* out) {
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (int64_t i = 0; i < n; ++i) {
    int32_t wi = w[i];
    a0 += x0[i] * wi;
    a1 += x1[i] * wi;
    a2 += x2[i] * wi;
    a3 += x3[i] * wi;
  }
  out[0] = a0;
  out[1] = a1;
  out[2] = a2;
  out[3] = a3;
}

inline int32_t dot1(const int16_t* __restrict w, const int16_t* __restrict x, int64_t n) {
  int32_t a = 0;
  for (int64_t i = 0; i < n; ++i) a += x[i] * static_cast<int32_t>(w[i]);
  return a;
}

template <typename T>
class Mvau : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    const ProgramLayer& l = *ctx.layer;
    auto k = std::make_unique<Mvau>();
    const ProgramBlob* w = ctx.program->param(l, "weights");
    if (!w || w->shape.size() != 2) return l.error("needs a weights blob of shape (MW, MH)");
    k->mw_ = w->shape[0];
    k->mh_ = w->shape[1];
    int64_t mw, mh;
    Status st = l.intAttr("MW", &mw);
    if (st) st = l.intAttr("MH", &mh);
    if (!st) return st;
    if (mw != k->mw_ || mh != k->mh_) return l.error("MW/MH attributes do not match the weights' shape");
    if (ctx.inShape.back() != k->mw_) {
      return l.error("input has " + std::to_string(ctx.inShape.back()) + " channels, MW is " + std::to_string(k->mw_));
    }
    MatrixAttrs attrs;
    if (!(st = activationAttrs(l, &attrs))) return st;
    k->pixels_ = numElements(ctx.inShape) / k->mw_;

    // Range of every output column; the fast path needs all of it (and all partial sums) in int32.
    ValueRange acc{0, 0, false};
    int64_t absBound = 0;
    bool weights16 = true;
    for (int64_t j = 0; j < k->mh_; ++j) {
      DotRange column;
      for (int64_t i = 0; i < k->mw_; ++i) {
        int64_t v = w->values[i * k->mh_ + j];
        weights16 = weights16 && v >= INT16_MIN && v <= INT16_MAX;
        column.addTerm(ctx.inRange, v);
      }
      if (column.tooWide) return l.error("accumulator may exceed 64 bits");
      acc = j == 0 ? column.range : acc.join(column.range);
      absBound = std::max(absBound, column.absBound);
    }
    k->fast_ = sizeof(T) == 4 && ctx.inRange.fits16() && weights16 && absBound < INT32_MAX;
    const ProgramBlob* thr = ctx.program->param(l, "thresholds");
    st = k->fast_ ? Activation<int32_t>::build(l, thr, k->mh_, attrs.noActivation, attrs.actVal, acc, &k->act32_, &k->outRange_)
                  : Activation<int64_t>::build(l, thr, k->mh_, attrs.noActivation, attrs.actVal, acc, &k->act64_, &k->outRange_);
    if (!st) return st;
    if (k->fast_) {
      k->mwp_ = (k->mw_ + kLane - 1) / kLane * kLane;
      k->w16_.assign(static_cast<size_t>(k->mh_ * k->mwp_), 0);
      for (int64_t i = 0; i < k->mw_; ++i) {
        for (int64_t j = 0; j < k->mh_; ++j) k->w16_[j * k->mwp_ + i] = static_cast<int16_t>(w->values[i * k->mh_ + j]);
      }
      k->rowsPerBlock_ = std::min(k->mh_, std::max<int64_t>(4, kWeightBlockBytes / (2 * k->mwp_)));
      k->accRows_.assign(static_cast<size_t>(4 * k->rowsPerBlock_), 0);
      k->narrowScratch_ = static_cast<size_t>(k->pixels_ * k->mwp_);
    } else {
      k->w64_.resize(static_cast<size_t>(k->mh_ * k->mw_));
      for (int64_t i = 0; i < k->mw_; ++i) {
        for (int64_t j = 0; j < k->mh_; ++j) k->w64_[j * k->mw_ + i] = w->values[i * k->mh_ + j];
      }
    }
    k->outShape_ = ctx.inShape;
    k->outShape_.back() = k->mh_;
    *out = std::move(k);
    return Status::ok();
  }

  void run(const T* x, T* y, KernelScratch* scratch) override {
    if (fast_) {
      runFast(x, y, scratch->narrow.data());
    } else {
      runWide(x, y);
    }
  }

 private:
  void runFast(const T* x, T* y, int16_t* xs) {
    for (int64_t p = 0; p < pixels_; ++p) {
      int16_t* row = xs + p * mwp_;
      for (int64_t i = 0; i < mw_; ++i) row[i] = static_cast<int16_t>(x[p * mw_ + i]);
      std::fill(row + mw_, row + mwp_, int16_t{0});
    }
    for (int64_t j0 = 0; j0 < mh_; j0 += rowsPerBlock_) {
      const int64_t j1 = std::min(mh_, j0 + rowsPerBlock_);
      int64_t p = 0;
      const int64_t width = j1 - j0;
      int32_t* rows = accRows_.data();  // [4][rowsPerBlock]
      for (; p + 4 <= pixels_; p += 4) {
        const int16_t* x0 = xs + p * mwp_;
        for (int64_t j = j0; j < j1; ++j) {
          int32_t acc[4];
          dot4(w16_.data() + j * mwp_, x0, x0 + mwp_, x0 + 2 * mwp_, x0 + 3 * mwp_, mwp_, acc);
          for (int r = 0; r < 4; ++r) rows[r * rowsPerBlock_ + (j - j0)] = acc[r];
        }
        for (int r = 0; r < 4; ++r) act32_.applyRow(rows + r * rowsPerBlock_, j0, width, y + (p + r) * mh_ + j0);
      }
      for (; p < pixels_; ++p) {
        for (int64_t j = j0; j < j1; ++j) rows[j - j0] = dot1(w16_.data() + j * mwp_, xs + p * mwp_, mwp_);
        act32_.applyRow(rows, j0, width, y + p * mh_ + j0);
      }
    }
  }

  void runWide(const T* x, T* y) {
    for (int64_t p = 0; p < pixels_; ++p) {
      const T* in = x + p * mw_;
      for (int64_t j = 0; j < mh_; ++j) {
        const int64_t* wr = w64_.data() + j * mw_;
        int64_t acc = 0;
        for (int64_t i = 0; i < mw_; ++i) acc += static_cast<int64_t>(in[i]) * wr[i];
        y[p * mh_ + j] = static_cast<T>(act64_.apply(j, acc));
      }
    }
  }

  bool fast_ = false;
  int64_t mw_ = 0, mh_ = 0, mwp_ = 0, pixels_ = 0, rowsPerBlock_ = 4;
  std::vector<int16_t> w16_;  // [MH][MWp], transposed, zero padded
  std::vector<int32_t> accRows_;  // accumulators of 4 pixels x one weight block, before activation
  std::vector<int64_t> w64_;  // [MH][MW], transposed
  Activation<int32_t> act32_;
  Activation<int64_t> act64_;
};

template <typename T>
class Vvau : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    const ProgramLayer& l = *ctx.layer;
    auto k = std::make_unique<Vvau>();
    const ProgramBlob* w = ctx.program->param(l, "weights");
    if (!w || w->shape.size() != 2) return l.error("needs a weights blob of shape (C, KH*KW)");
    k->c_ = w->shape[0];
    k->taps_ = w->shape[1];
    if (ctx.inShape.back() != k->c_ * k->taps_) {
      return l.error("input has " + std::to_string(ctx.inShape.back()) + " values per pixel, weights need " +
                     std::to_string(k->c_ * k->taps_));
    }
    MatrixAttrs attrs;
    Status st = activationAttrs(l, &attrs);
    if (!st) return st;
    k->pixels_ = numElements(ctx.inShape) / ctx.inShape.back();
    ValueRange acc{0, 0, false};
    int64_t absBound = 0;
    for (int64_t c = 0; c < k->c_; ++c) {
      DotRange channel;
      for (int64_t t = 0; t < k->taps_; ++t) channel.addTerm(ctx.inRange, w->values[c * k->taps_ + t]);
      if (channel.tooWide) return l.error("accumulator may exceed 64 bits");
      acc = c == 0 ? channel.range : acc.join(channel.range);
      absBound = std::max(absBound, channel.absBound);
    }
    k->fast_ = sizeof(T) == 4 && absBound < INT32_MAX;
    const ProgramBlob* thr = ctx.program->param(l, "thresholds");
    st = k->fast_ ? Activation<int32_t>::build(l, thr, k->c_, attrs.noActivation, attrs.actVal, acc, &k->act32_, &k->outRange_)
                  : Activation<int64_t>::build(l, thr, k->c_, attrs.noActivation, attrs.actVal, acc, &k->act64_, &k->outRange_);
    if (!st) return st;
    k->weights_.resize(static_cast<size_t>(k->c_ * k->taps_));
    for (int64_t c = 0; c < k->c_; ++c) {
      for (int64_t t = 0; t < k->taps_; ++t) k->weights_[t * k->c_ + c] = w->values[c * k->taps_ + t];
    }
    if (k->fast_) k->weights32_.assign(k->weights_.begin(), k->weights_.end());
    k->acc32_.resize(static_cast<size_t>(k->c_));
    k->wideScratch_ = static_cast<size_t>(k->c_);
    k->outShape_ = ctx.inShape;
    k->outShape_.back() = k->c_;
    *out = std::move(k);
    return Status::ok();
  }

  void run(const T* x, T* y, KernelScratch* scratch) override {
    const int64_t window = taps_ * c_;
    for (int64_t p = 0; p < pixels_; ++p) {
      const T* in = x + p * window;
      T* o = y + p * c_;
      if (fast_) {
        int32_t* __restrict acc = acc32_.data();
        std::fill(acc, acc + c_, 0);
        for (int64_t t = 0; t < taps_; ++t) {
          const T* __restrict xt = in + t * c_;
          const int32_t* __restrict wt = weights32_.data() + t * c_;
          for (int64_t c = 0; c < c_; ++c) acc[c] += static_cast<int32_t>(xt[c]) * wt[c];
        }
        act32_.applyRow(acc, 0, c_, o);
      } else {
        int64_t* acc = scratch->wide.data();
        std::fill(acc, acc + c_, int64_t{0});
        for (int64_t t = 0; t < taps_; ++t) {
          for (int64_t c = 0; c < c_; ++c) acc[c] += static_cast<int64_t>(in[t * c_ + c]) * weights_[t * c_ + c];
        }
        act64_.applyRow(acc, 0, c_, o);
      }
    }
  }

 private:
  bool fast_ = false;
  int64_t c_ = 0, taps_ = 0, pixels_ = 0;
  std::vector<int64_t> weights_;    // [taps][C]
  std::vector<int32_t> weights32_;  // same, for the int32 path
  std::vector<int32_t> acc32_;
  Activation<int32_t> act32_;
  Activation<int64_t> act64_;
};

}  // namespace

template <typename T>
Status makeMvau(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
  return Mvau<T>::make(ctx, out);
}

template <typename T>
Status makeVvau(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
  return Vvau<T>::make(ctx, out);
}

template Status makeMvau<int32_t>(const KernelContext&, std::unique_ptr<Kernel<int32_t>>*);
template Status makeMvau<int64_t>(const KernelContext&, std::unique_ptr<Kernel<int64_t>>*);
template Status makeVvau<int32_t>(const KernelContext&, std::unique_ptr<Kernel<int32_t>>*);
template Status makeVvau<int64_t>(const KernelContext&, std::unique_ptr<Kernel<int64_t>>*);

}  // namespace finnsplit
