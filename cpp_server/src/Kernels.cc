#include "Kernels.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <numeric>

#include "Activation.h"

namespace finnsplit {

const char kNeeds64[] = "needs 64-bit storage";

// ---- ValueRange ---------------------------------------------------------------------------------

ValueRange ValueRange::of(const DataType& dtype) {
  if (!dtype.fitsInt64()) return ValueRange{0, INT64_MAX, true};
  return ValueRange{dtype.min(), dtype.max(), false};
}

int64_t ValueRange::maxAbs() const {
  if (tooWide || lo == INT64_MIN) return INT64_MAX;
  return std::max(lo < 0 ? -lo : lo, hi < 0 ? -hi : hi);
}

ValueRange ValueRange::join(const ValueRange& other) const {
  return ValueRange{std::min(lo, other.lo), std::max(hi, other.hi), tooWide || other.tooWide};
}

ValueRange ValueRange::add(const ValueRange& a, const ValueRange& b) {
  ValueRange r;
  r.tooWide = a.tooWide || b.tooWide || __builtin_add_overflow(a.lo, b.lo, &r.lo) ||
              __builtin_add_overflow(a.hi, b.hi, &r.hi);
  return r;
}

ValueRange ValueRange::mul(const ValueRange& a, const ValueRange& b) {
  int64_t p[4];
  bool wide = a.tooWide || b.tooWide;
  wide = wide || __builtin_mul_overflow(a.lo, b.lo, &p[0]) || __builtin_mul_overflow(a.lo, b.hi, &p[1]) ||
         __builtin_mul_overflow(a.hi, b.lo, &p[2]) || __builtin_mul_overflow(a.hi, b.hi, &p[3]);
  if (wide) return ValueRange{0, 0, true};
  return ValueRange{*std::min_element(p, p + 4), *std::max_element(p, p + 4), false};
}

ValueRange ValueRange::scale(const ValueRange& a, int64_t count) {
  ValueRange r;
  r.tooWide = a.tooWide || __builtin_mul_overflow(a.lo, count, &r.lo) || __builtin_mul_overflow(a.hi, count, &r.hi);
  return r;
}

namespace {

Status needNhwc(const KernelContext& ctx) {
  if (ctx.inShape.size() != 4 || ctx.inShape[0] != 1) {
    return ctx.layer->error("input must be NHWC with batch 1");
  }
  return Status::ok();
}

// ---- FMPadding ----------------------------------------------------------------------------------

template <typename T>
class FmPadding : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    Status st = needNhwc(ctx);
    if (!st) return st;
    std::vector<int64_t> pad;
    st = ctx.layer->intsAttr("Padding", &pad);
    if (!st) return st;
    if (pad.size() != 4 || *std::min_element(pad.begin(), pad.end()) < 0) {
      return ctx.layer->error("Padding must be four non-negative integers top,left,bottom,right");
    }
    auto k = std::make_unique<FmPadding>();
    k->h_ = ctx.inShape[1];
    k->w_ = ctx.inShape[2];
    k->c_ = ctx.inShape[3];
    k->top_ = pad[0];
    k->left_ = pad[1];
    k->ow_ = k->w_ + pad[1] + pad[3];
    k->oh_ = k->h_ + pad[0] + pad[2];
    k->outShape_ = {1, k->oh_, k->ow_, k->c_};
    k->outRange_ = ctx.inRange.join(ValueRange{0, 0, false});
    *out = std::move(k);
    return Status::ok();
  }
  void run(const T* x, T* y, KernelScratch*) override {
    std::fill(y, y + oh_ * ow_ * c_, T(0));
    for (int64_t i = 0; i < h_; ++i) {
      std::memcpy(y + ((top_ + i) * ow_ + left_) * c_, x + i * w_ * c_, sizeof(T) * w_ * c_);
    }
  }

 private:
  int64_t h_, w_, c_, top_, left_, oh_, ow_;
};

// ---- ConvolutionInputGenerator (sliding window) -------------------------------------------------

template <typename T>
class SlidingWindow : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    Status st = needNhwc(ctx);
    if (!st) return st;
    auto k = std::make_unique<SlidingWindow>();
    const ProgramLayer& l = *ctx.layer;
    if (!(st = l.pairAttr("ConvKernelDim", &k->kh_, &k->kw_)) || !(st = l.pairAttr("Stride", &k->sh_, &k->sw_)) ||
        !(st = l.pairAttr("OFMDim", &k->oh_, &k->ow_))) {
      return st;
    }
    k->dh_ = k->dw_ = 1;
    if (l.attrs.count("Dilation") && !(st = l.pairAttr("Dilation", &k->dh_, &k->dw_))) return st;
    k->h_ = ctx.inShape[1];
    k->w_ = ctx.inShape[2];
    k->c_ = ctx.inShape[3];
    if (k->kh_ < 1 || k->kw_ < 1 || k->sh_ < 1 || k->sw_ < 1 || k->dh_ < 1 || k->dw_ < 1 || k->oh_ < 1 || k->ow_ < 1) {
      return l.error("kernel, stride, dilation and OFMDim must be positive");
    }
    if ((k->oh_ - 1) * k->sh_ + (k->kh_ - 1) * k->dh_ >= k->h_ || (k->ow_ - 1) * k->sw_ + (k->kw_ - 1) * k->dw_ >= k->w_) {
      return l.error("OFMDim, kernel, stride and dilation reach outside the " + std::to_string(k->h_) + "x" +
                     std::to_string(k->w_) + " input");
    }
    k->outShape_ = {1, k->oh_, k->ow_, k->kh_ * k->kw_ * k->c_};
    k->outRange_ = ctx.inRange;
    *out = std::move(k);
    return Status::ok();
  }
  void run(const T* x, T* y, KernelScratch*) override {
    for (int64_t oy = 0; oy < oh_; ++oy) {
      for (int64_t ox = 0; ox < ow_; ++ox) {
        for (int64_t ky = 0; ky < kh_; ++ky) {
          const T* row = x + ((oy * sh_ + ky * dh_) * w_ + ox * sw_) * c_;
          for (int64_t kx = 0; kx < kw_; ++kx) {
            std::memcpy(y, row + kx * dw_ * c_, sizeof(T) * c_);
            y += c_;
          }
        }
      }
    }
  }

 private:
  int64_t h_, w_, c_, kh_, kw_, sh_, sw_, dh_, dw_, oh_, ow_;
};

// ---- Thresholding -------------------------------------------------------------------------------

template <typename T>
class Thresholding : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    if (sizeof(T) == 4 && (ctx.inRange.lo <= INT32_MIN || ctx.inRange.hi >= INT32_MAX)) return Status::error(kNeeds64);
    auto k = std::make_unique<Thresholding>();
    int64_t actVal;
    Status st = ctx.layer->intAttrOr("ActVal", 0, &actVal);
    if (!st) return st;
    k->c_ = ctx.inShape.back();
    k->count_ = numElements(ctx.inShape);
    st = Activation<T>::build(*ctx.layer, ctx.program->param(*ctx.layer, "thresholds"), k->c_, false, actVal,
                              ctx.inRange, &k->act_, &k->outRange_);
    if (!st) return st;
    k->outShape_ = ctx.inShape;
    *out = std::move(k);
    return Status::ok();
  }
  void run(const T* x, T* y, KernelScratch*) override {
    for (int64_t i = 0; i < count_; i += c_) act_.applyRow(x + i, 0, c_, y + i);
  }

 private:
  int64_t c_, count_;
  Activation<T> act_;
};

// ---- ChannelwiseOp ------------------------------------------------------------------------------

template <typename T>
class Channelwise : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    auto k = std::make_unique<Channelwise>();
    std::string func;
    Status st = ctx.layer->textAttr("Func", &func);
    if (!st) return st;
    if (func != "add" && func != "mul") return ctx.layer->error("ChannelwiseOp Func '" + func + "' is not add or mul");
    k->mul_ = func == "mul";
    const ProgramBlob* param = ctx.program->param(*ctx.layer, "param");
    k->c_ = ctx.inShape.back();
    if (!param || param->values.empty() || (param->values.size() != 1 && static_cast<int64_t>(param->values.size()) != k->c_)) {
      return ctx.layer->error("needs a param blob of " + std::to_string(k->c_) + " values");
    }
    ValueRange pr{*std::min_element(param->values.begin(), param->values.end()),
                  *std::max_element(param->values.begin(), param->values.end()), false};
    k->outRange_ = k->mul_ ? ValueRange::mul(ctx.inRange, pr) : ValueRange::add(ctx.inRange, pr);
    k->param_.assign(static_cast<size_t>(k->c_), 0);
    for (int64_t c = 0; c < k->c_; ++c) k->param_[c] = param->values[param->values.size() == 1 ? 0 : c];
    k->count_ = numElements(ctx.inShape);
    k->outShape_ = ctx.inShape;
    *out = std::move(k);
    return Status::ok();
  }
  void run(const T* x, T* y, KernelScratch*) override {
    // The range check at build time guarantees every result fits T, so T arithmetic is exact.
    for (int64_t i = 0; i < count_; i += c_) {
      if (mul_) {
        for (int64_t c = 0; c < c_; ++c) y[i + c] = static_cast<T>(int64_t{x[i + c]} * param_[c]);
      } else {
        for (int64_t c = 0; c < c_; ++c) y[i + c] = static_cast<T>(int64_t{x[i + c]} + param_[c]);
      }
    }
  }

 private:
  bool mul_ = false;
  int64_t c_, count_;
  std::vector<int64_t> param_;
};

// ---- StreamingMaxPool ---------------------------------------------------------------------------

template <typename T>
class StreamingMaxPool : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    Status st = needNhwc(ctx);
    if (!st) return st;
    auto k = std::make_unique<StreamingMaxPool>();
    if (!(st = ctx.layer->pairAttr("PoolDim", &k->kh_, &k->kw_))) return st;
    if (k->kh_ < 1 || k->kw_ < 1) return ctx.layer->error("PoolDim must be positive");
    k->w_ = ctx.inShape[2];
    k->c_ = ctx.inShape[3];
    k->oh_ = ctx.inShape[1] / k->kh_;
    k->ow_ = k->w_ / k->kw_;
    k->outShape_ = {1, k->oh_, k->ow_, k->c_};
    k->outRange_ = ctx.inRange;
    *out = std::move(k);
    return Status::ok();
  }
  void run(const T* x, T* y, KernelScratch*) override {
    for (int64_t i = 0; i < oh_; ++i) {
      for (int64_t j = 0; j < ow_; ++j) {
        T* o = y + (i * ow_ + j) * c_;
        std::memcpy(o, x + ((i * kh_) * w_ + j * kw_) * c_, sizeof(T) * c_);
        for (int64_t a = 0; a < kh_; ++a) {
          for (int64_t b = 0; b < kw_; ++b) {
            const T* in = x + ((i * kh_ + a) * w_ + j * kw_ + b) * c_;
            for (int64_t c = 0; c < c_; ++c) o[c] = std::max(o[c], in[c]);
          }
        }
      }
    }
  }

 private:
  int64_t kh_, kw_, w_, c_, oh_, ow_;
};

// ---- Pool (MaxPool / QuantAvgPool over sliding windows) -----------------------------------------

template <typename T>
class Pool : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    auto k = std::make_unique<Pool>();
    const ProgramLayer& l = *ctx.layer;
    std::string function;
    int64_t kh, kw;
    Status st;
    if (!(st = l.textAttr("Function", &function)) || !(st = l.pairAttr("KernelSize", &kh, &kw))) return st;
    if (function != "MaxPool" && function != "QuantAvgPool") {
      return l.error("Pool Function '" + function + "' is not MaxPool or QuantAvgPool");
    }
    k->taps_ = kh * kw;
    int64_t last = ctx.inShape.back();
    if (k->taps_ < 1 || last % k->taps_ != 0) return l.error("input channels are not a multiple of KernelSize");
    k->c_ = last / k->taps_;
    k->pixels_ = numElements(ctx.inShape) / last;
    k->max_ = function == "MaxPool";
    if (k->max_) {
      k->outRange_ = ctx.inRange;
    } else {
      DataType outDt;
      if (!(st = l.dtypeAttr("OutputDataType", &outDt)) || !(st = l.intAttr("Shift", &k->shift_))) return st;
      if (k->shift_ < 0 || k->shift_ > 62) return l.error("Shift must be 0..62");
      ValueRange sum = ValueRange::scale(ctx.inRange, k->taps_);
      if (sum.tooWide) return l.error("window sums may exceed 64 bits");
      k->lo_ = outDt.min();
      k->hi_ = outDt.max();
      k->outRange_ = ValueRange{std::max(sum.lo >> k->shift_, k->lo_), std::min(sum.hi >> k->shift_, k->hi_), false};
      if (k->outRange_.lo > k->outRange_.hi) k->outRange_ = ValueRange{k->lo_, k->lo_, false};
    }
    k->outShape_ = ctx.inShape;
    k->outShape_.back() = k->c_;
    *out = std::move(k);
    return Status::ok();
  }
  void run(const T* x, T* y, KernelScratch*) override {
    for (int64_t p = 0; p < pixels_; ++p) {
      const T* in = x + p * taps_ * c_;
      T* o = y + p * c_;
      for (int64_t c = 0; c < c_; ++c) {
        if (max_) {
          T best = in[c];
          for (int64_t t = 1; t < taps_; ++t) best = std::max(best, in[t * c_ + c]);
          o[c] = best;
        } else {
          int64_t sum = 0;
          for (int64_t t = 0; t < taps_; ++t) sum += in[t * c_ + c];
          o[c] = static_cast<T>(std::min(std::max(sum >> shift_, lo_), hi_));  // arithmetic shift = floor
        }
      }
    }
  }

 private:
  bool max_ = true;
  int64_t taps_, c_, pixels_, shift_ = 0, lo_ = 0, hi_ = 0;
};

// ---- GlobalAccPool ------------------------------------------------------------------------------

template <typename T>
class GlobalAccPool : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    Status st = needNhwc(ctx);
    if (!st) return st;
    auto k = std::make_unique<GlobalAccPool>();
    k->c_ = ctx.inShape[3];
    k->pixels_ = ctx.inShape[1] * ctx.inShape[2];
    k->outShape_ = {1, 1, 1, k->c_};
    k->outRange_ = ValueRange::scale(ctx.inRange, k->pixels_);
    k->wideScratch_ = static_cast<size_t>(k->c_);
    *out = std::move(k);
    return Status::ok();
  }
  void run(const T* x, T* y, KernelScratch* scratch) override {
    int64_t* acc = scratch->wide.data();
    std::fill(acc, acc + c_, int64_t{0});
    for (int64_t p = 0; p < pixels_; ++p) {
      for (int64_t c = 0; c < c_; ++c) acc[c] += x[p * c_ + c];
    }
    for (int64_t c = 0; c < c_; ++c) y[c] = static_cast<T>(acc[c]);
  }

 private:
  int64_t c_, pixels_;
};

// ---- LabelSelect (top-K) ------------------------------------------------------------------------

template <typename T>
class LabelSelect : public Kernel<T> {
 public:
  static Status make(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
    auto k = std::make_unique<LabelSelect>();
    Status st = ctx.layer->intAttr("K", &k->k_);
    if (!st) return st;
    k->c_ = ctx.inShape.back();
    if (k->k_ < 1 || k->k_ > k->c_) return ctx.layer->error("K must be 1.." + std::to_string(k->c_));
    k->rows_ = numElements(ctx.inShape) / k->c_;
    k->outShape_ = ctx.inShape;
    k->outShape_.back() = k->k_;
    k->outRange_ = ValueRange{0, k->c_ - 1, false};
    k->order_.resize(static_cast<size_t>(k->c_));
    *out = std::move(k);
    return Status::ok();
  }
  void run(const T* x, T* y, KernelScratch*) override {
    for (int64_t r = 0; r < rows_; ++r) {
      const T* v = x + r * c_;
      std::iota(order_.begin(), order_.end(), int64_t{0});
      // Largest first, equal values by lower index first: a strict total order, so the top K are exact.
      std::partial_sort(order_.begin(), order_.begin() + k_, order_.end(),
                        [v](int64_t a, int64_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
      for (int64_t i = 0; i < k_; ++i) y[r * k_ + i] = static_cast<T>(order_[i]);
    }
  }

 private:
  int64_t k_, c_, rows_;
  std::vector<int64_t> order_;
};

template <typename T>
using Factory = Status (*)(const KernelContext&, std::unique_ptr<Kernel<T>>*);

template <typename T>
const std::map<std::string, Factory<T>>& factories() {
  static const std::map<std::string, Factory<T>> table = {
      {"FMPadding", &FmPadding<T>::make},
      {"ConvolutionInputGenerator", &SlidingWindow<T>::make},
      {"MVAU", &makeMvau<T>},
      {"VVAU", &makeVvau<T>},
      {"Thresholding", &Thresholding<T>::make},
      {"ChannelwiseOp", &Channelwise<T>::make},
      {"StreamingMaxPool", &StreamingMaxPool<T>::make},
      {"Pool", &Pool<T>::make},
      {"GlobalAccPool", &GlobalAccPool<T>::make},
      {"LabelSelect", &LabelSelect<T>::make},
  };
  return table;
}

}  // namespace

template <typename T>
Status makeKernel(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out) {
  const auto& table = factories<T>();
  auto it = table.find(ctx.layer->opType);
  if (it == table.end()) return ctx.layer->error("no emulator kernel for op type " + ctx.layer->opType);
  Status st = it->second(ctx, out);
  if (!st) return st;
  const ValueRange& range = (*out)->outRange();
  if (range.tooWide) return ctx.layer->error("output values may exceed 64 bits");
  if (sizeof(T) == 4 && !range.fits32()) return Status::error(kNeeds64);
  return Status::ok();
}

template Status makeKernel<int32_t>(const KernelContext&, std::unique_ptr<Kernel<int32_t>>*);
template Status makeKernel<int64_t>(const KernelContext&, std::unique_ptr<Kernel<int64_t>>*);

}  // namespace finnsplit
