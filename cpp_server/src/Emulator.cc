#include "Emulator.h"

#include <time.h>

#include <algorithm>

#include "Clock.h"
#include "DensePacking.h"
#include "Kernels.h"

namespace finnsplit {
namespace {

template <typename T>
class Chain : public Emulator {
 public:
  static Status build(const Program& program, std::unique_ptr<Emulator>* out) {
    auto chain = std::make_unique<Chain>();
    chain->input_ = program.input();
    chain->output_ = program.output();
    KernelContext ctx;
    ctx.program = &program;
    ctx.inShape = program.input().shape();
    ctx.inRange = ValueRange::of(program.input().dtype());
    if (ctx.inRange.tooWide || (sizeof(T) == 4 && !ctx.inRange.fits32())) {
      if (sizeof(T) == 4) return Status::error(kNeeds64);
      return Status::error("input datatype " + program.input().dtype().name() + " does not fit 64 bits");
    }
    size_t maxElements = static_cast<size_t>(numElements(ctx.inShape));
    size_t narrow = 0;
    size_t wide = 0;
    for (const ProgramLayer& layer : program.layers()) {
      ctx.layer = &layer;
      std::unique_ptr<Kernel<T>> kernel;
      Status st = makeKernel<T>(ctx, &kernel);
      if (!st) return st;
      if (kernel->outShape() != layer.outSpec.shape()) {
        TensorSpec computed(layer.outSpec.dtype(), kernel->outShape());
        return layer.error("computes shape " + computed.toString() + " but the program declares " +
                           layer.outSpec.toString());
      }
      maxElements = std::max(maxElements, static_cast<size_t>(numElements(kernel->outShape())));
      narrow = std::max(narrow, kernel->narrowScratch());
      wide = std::max(wide, kernel->wideScratch());
      ctx.inShape = kernel->outShape();
      ctx.inRange = kernel->outRange();
      chain->names_.push_back(layer.name);
      chain->kernels_.push_back(std::move(kernel));
    }
    if (ctx.inShape != program.output().shape()) {
      return Status::error("the last layer's shape does not match the program's output " + program.output().toString());
    }
    chain->times_.assign(chain->kernels_.size(), 0);
    chain->a_.assign(maxElements, 0);
    chain->b_.assign(maxElements, 0);
    chain->scratch_.narrow.assign(narrow, 0);
    chain->scratch_.wide.assign(wide, 0);
    *out = std::move(chain);
    return Status::ok();
  }

  int storageBits() const override { return 8 * sizeof(T); }

  Status run(const uint8_t* input, uint8_t* output) override {
    Status st = DensePacking::unpack<T>(input, input_.numElements(), input_.dtype(), a_.data());
    if (!st) return st;
    T* x = a_.data();
    T* y = b_.data();
    for (size_t i = 0; i < kernels_.size(); ++i) {
      int64_t start = monotonicNs();
      kernels_[i]->run(x, y, &scratch_);
      times_[i] += monotonicNs() - start;
      std::swap(x, y);
    }
    st = DensePacking::pack<T>(x, output_.numElements(), output_.dtype(), output);
    return st ? st : st.withContext("output of " + (names_.empty() ? std::string("program") : names_.back()));
  }

  std::vector<std::pair<std::string, int64_t>> layerTimes() const override {
    std::vector<std::pair<std::string, int64_t>> out;
    for (size_t i = 0; i < names_.size(); ++i) out.emplace_back(names_[i], times_[i]);
    return out;
  }

 private:
  std::vector<std::unique_ptr<Kernel<T>>> kernels_;
  std::vector<std::string> names_;
  std::vector<int64_t> times_;
  std::vector<T> a_;
  std::vector<T> b_;
  KernelScratch scratch_;
};

}  // namespace

Status Emulator::build(const Program& program, std::unique_ptr<Emulator>* out) {
  Status st = Chain<int32_t>::build(program, out);
  if (st) return st;
  if (st.message() != kNeeds64) return st.withContext(program.name());
  st = Chain<int64_t>::build(program, out);
  return st ? st : st.withContext(program.name());
}

}  // namespace finnsplit
