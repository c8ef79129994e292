#include "Emulator.h"

#include <time.h>

#include <algorithm>
#include <map>

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

// A program that branches and joins (format 2: residual networks): one buffer per tensor, the layers
// in program order. DuplicateStreams copies its input to each output, AddStreams adds its two inputs;
// every other layer is the chain's kernel, reading the buffer of its input.
template <typename T>
class Graph : public Emulator {
 public:
  static Status build(const Program& program, std::unique_ptr<Emulator>* out) {
    auto graph = std::make_unique<Graph>();
    graph->input_ = program.input();
    graph->output_ = program.output();
    std::map<std::string, size_t> index;  // tensor -> buffer
    std::vector<std::vector<int64_t>> shapes;
    std::vector<ValueRange> ranges;
    auto add = [&](const std::string& name, const std::vector<int64_t>& shape, const ValueRange& range) {
      index[name] = shapes.size();
      shapes.push_back(shape);
      ranges.push_back(range);
    };
    for (size_t i = 0; i < program.inputs().size(); ++i) {  // buffers [0, inputs) are the inputs, in order
      ValueRange inRange = ValueRange::of(program.inputs()[i].dtype());
      if (inRange.tooWide || (sizeof(T) == 4 && !inRange.fits32())) return Status::error(kNeeds64);
      add(program.inputNames()[i], program.inputs()[i].shape(), inRange);
    }
    size_t narrow = 0;
    size_t wide = 0;
    for (const ProgramLayer& layer : program.layers()) {
      Step step;
      for (const std::string& name : layer.inputs) step.inputs.push_back(index.at(name));  // Program checked them
      const std::vector<int64_t>& inShape = shapes[step.inputs[0]];
      std::vector<int64_t> outShape = inShape;
      ValueRange outRange = ranges[step.inputs[0]];
      if (layer.opType == "DuplicateStreams") {
        int64_t streams;
        Status st = layer.intAttr("NumOutputStreams", &streams);
        if (!st) return st;
        if (layer.inputs.size() != 1 || streams != static_cast<int64_t>(layer.outputs.size())) {
          return layer.error("needs one input and NumOutputStreams outputs");
        }
      } else if (layer.opType == "AddStreams") {
        if (layer.inputs.size() != 2 || layer.outputs.size() != 1 || shapes[step.inputs[1]] != inShape) {
          return layer.error("needs two inputs of one shape and one output");
        }
        outRange = ValueRange::add(outRange, ranges[step.inputs[1]]);
        if (outRange.tooWide || (sizeof(T) == 4 && !outRange.fits32())) return Status::error(kNeeds64);
      } else {
        if (layer.inputs.size() != 1 || layer.outputs.size() != 1) return layer.error("reads and writes one tensor");
        KernelContext ctx;
        ctx.program = &program;
        ctx.layer = &layer;
        ctx.inShape = inShape;
        ctx.inRange = outRange;
        Status st = makeKernel<T>(ctx, &step.kernel);
        if (!st) return st;
        outShape = step.kernel->outShape();
        outRange = step.kernel->outRange();
        narrow = std::max(narrow, step.kernel->narrowScratch());
        wide = std::max(wide, step.kernel->wideScratch());
      }
      if (outShape != layer.outSpec.shape()) {
        TensorSpec computed(layer.outSpec.dtype(), outShape);
        return layer.error("computes shape " + computed.toString() + " but the program declares " +
                           layer.outSpec.toString());
      }
      for (const std::string& name : layer.outputs) {
        step.outputs.push_back(shapes.size());
        add(name, outShape, outRange);
      }
      step.count = numElements(outShape);
      graph->names_.push_back(layer.name);
      graph->steps_.push_back(std::move(step));
    }
    for (size_t i = 0; i < program.outputs().size(); ++i) {
      auto it = index.find(program.outputNames()[i]);
      if (it == index.end() || shapes[it->second] != program.outputs()[i].shape()) {
        return Status::error("output " + program.outputNames()[i] + " does not match the program's " +
                             program.outputs()[i].toString());
      }
      graph->outBuffers_.push_back(it->second);
    }
    graph->inSpecs_ = program.inputs();
    graph->outSpecs_ = program.outputs();
    for (const auto& shape : shapes) graph->buffers_.emplace_back(static_cast<size_t>(numElements(shape)), 0);
    graph->times_.assign(graph->steps_.size(), 0);
    graph->scratch_.narrow.assign(narrow, 0);
    graph->scratch_.wide.assign(wide, 0);
    *out = std::move(graph);
    return Status::ok();
  }

  int storageBits() const override { return 8 * sizeof(T); }

  Status run(const uint8_t* input, uint8_t* output) override {
    // a composite frame: each input tensor packed densely, one after another (docs/protocol.md#multi-tensor-frames)
    for (size_t k = 0; k < inSpecs_.size(); ++k) {
      Status st = DensePacking::unpack<T>(input, inSpecs_[k].numElements(), inSpecs_[k].dtype(), buffers_[k].data());
      if (!st) return inSpecs_.size() > 1 ? st.withContext("input " + std::to_string(k)) : st;
      input += inSpecs_[k].packedBytes();
    }
    for (size_t i = 0; i < steps_.size(); ++i) {
      int64_t start = monotonicNs();
      Step& step = steps_[i];
      const T* x = buffers_[step.inputs[0]].data();
      T* y = buffers_[step.outputs[0]].data();
      if (step.kernel) {
        step.kernel->run(x, y, &scratch_);
      } else if (step.inputs.size() == 2) {  // AddStreams: the range check at build proves T exact
        const T* x2 = buffers_[step.inputs[1]].data();
        for (int64_t k = 0; k < step.count; ++k) y[k] = static_cast<T>(x[k] + x2[k]);
      } else {  // DuplicateStreams
        for (size_t o : step.outputs) std::copy(x, x + step.count, buffers_[o].data());
      }
      times_[i] += monotonicNs() - start;
    }
    for (size_t k = 0; k < outSpecs_.size(); ++k) {
      Status st = DensePacking::pack<T>(buffers_[outBuffers_[k]].data(), outSpecs_[k].numElements(),
                                        outSpecs_[k].dtype(), output);
      if (!st) return st.withContext("output " + std::to_string(k) + " of " + (names_.empty() ? std::string("program") : names_.back()));
      output += outSpecs_[k].packedBytes();
    }
    return Status::ok();
  }

  std::vector<std::pair<std::string, int64_t>> layerTimes() const override {
    std::vector<std::pair<std::string, int64_t>> out;
    for (size_t i = 0; i < names_.size(); ++i) out.emplace_back(names_[i], times_[i]);
    return out;
  }

 private:
  struct Step {
    std::unique_ptr<Kernel<T>> kernel;  // null for DuplicateStreams / AddStreams
    std::vector<size_t> inputs;         // buffer indices
    std::vector<size_t> outputs;
    int64_t count = 0;                  // output elements
  };
  std::vector<Step> steps_;
  std::vector<std::string> names_;
  std::vector<int64_t> times_;
  std::vector<std::vector<T>> buffers_;  // one per tensor, the program inputs first
  std::vector<size_t> outBuffers_;       // the program outputs' buffers, in boundary order
  std::vector<TensorSpec> inSpecs_;
  std::vector<TensorSpec> outSpecs_;
  KernelScratch scratch_;
};

template <typename T>
Status buildAny(const Program& program, std::unique_ptr<Emulator>* out) {
  return program.branches() ? Graph<T>::build(program, out) : Chain<T>::build(program, out);
}

}  // namespace

Status Emulator::build(const Program& program, std::unique_ptr<Emulator>* out) {
  Status st = buildAny<int32_t>(program, out);
  if (st) return st;
  if (st.message() != kNeeds64) return st.withContext(program.name());
  st = buildAny<int64_t>(program, out);
  return st ? st : st.withContext(program.name());
}

}  // namespace finnsplit
