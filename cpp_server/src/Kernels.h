// Kernels: the layer kernels of the emulate backend, one small class per FINN layer type, with the
// semantics of docs/program-format.md (bit-exact with splitter/executor.py). They are grouped in two
// files by family (Kernels.cc: data movement, pooling, elementwise; MatrixKernels.cc: MVAU, VVAU)
// rather than one file per class, because each is a constructor plus one loop.
//
// Each kernel is built once at load time: it validates its attributes and parameters, checks the
// output shape it computes against the one the program declares, propagates the range of values
// (so the emulator can prove int32 storage and accumulation exact), and preallocates everything
// it needs. run() then allocates nothing.
// Thread safety: a built kernel's run() may be called from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "Program.h"
#include "Status.h"

namespace finnsplit {

// The closed interval of values a tensor can hold. `tooWide` marks a range past int64.
struct ValueRange {
  int64_t lo = 0;
  int64_t hi = 0;
  bool tooWide = false;

  static ValueRange of(const DataType& dtype);
  bool fits32() const { return !tooWide && lo >= INT32_MIN && hi <= INT32_MAX; }
  bool fits16() const { return !tooWide && lo >= INT16_MIN && hi <= INT16_MAX; }
  int64_t maxAbs() const;  // saturates at INT64_MAX
  ValueRange join(const ValueRange& other) const;
  // Interval arithmetic with overflow detection (sets tooWide).
  static ValueRange add(const ValueRange& a, const ValueRange& b);
  static ValueRange mul(const ValueRange& a, const ValueRange& b);
  static ValueRange scale(const ValueRange& a, int64_t count);  // a summed `count` times
};

// What a kernel's factory gets: the layer, its program, and the shape and range of its input.
struct KernelContext {
  const Program* program = nullptr;
  const ProgramLayer* layer = nullptr;
  std::vector<int64_t> inShape;  // NHWC
  ValueRange inRange;
};

// Scratch memory shared by all kernels of one emulator, sized at load time to the largest need.
struct KernelScratch {
  std::vector<int16_t> narrow;  // MVAU's int16 copy of its input
  std::vector<int64_t> wide;    // per-channel accumulators
};

template <typename T>
class Kernel {
 public:
  virtual ~Kernel() = default;
  // x has the input shape, y the output shape; they never alias.
  virtual void run(const T* x, T* y, KernelScratch* scratch) = 0;

  const std::vector<int64_t>& outShape() const { return outShape_; }
  const ValueRange& outRange() const { return outRange_; }
  size_t narrowScratch() const { return narrowScratch_; }
  size_t wideScratch() const { return wideScratch_; }

 protected:
  std::vector<int64_t> outShape_;
  ValueRange outRange_;
  size_t narrowScratch_ = 0;
  size_t wideScratch_ = 0;
};

// Builds the kernel for ctx.layer with storage type T (int32_t or int64_t). Fails with a message
// naming the layer if the layer type is unknown, an attribute or parameter is missing or
// inconsistent, or (for T = int32_t) a value could leave the int32 range — the caller then
// retries with int64_t.
template <typename T>
Status makeKernel(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out);

// The MVAU and VVAU factories (MatrixKernels.cc), used by makeKernel.
template <typename T>
Status makeMvau(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out);
template <typename T>
Status makeVvau(const KernelContext& ctx, std::unique_ptr<Kernel<T>>* out);

// Marker in error messages asking the emulator to retry with 64-bit storage.
extern const char kNeeds64[];

}  // namespace finnsplit
