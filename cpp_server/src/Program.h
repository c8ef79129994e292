// Program: a parsed program file (docs/program-format.md) — the layers in execution order (a chain in
// version 1; version 2 may branch and join; version 3 has several inputs or outputs: a partition cut
// inside a residual block) with their attributes and integer parameter blobs.
// Rejects everything the Python reader rejects.
// Thread safety: immutable after parse(); const methods may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "Status.h"
#include "TensorSpec.h"

namespace finnsplit {

struct ProgramBlob {
  std::vector<int64_t> shape;
  std::vector<int64_t> values;  // row-major, widened from the file's int8..int64
};

struct ProgramLayer {
  std::string opType;
  std::string name;
  std::string input;                 // inputs[0]
  std::string output;                // outputs[0]
  std::vector<std::string> inputs;   // format 2: AddStreams reads two tensors
  std::vector<std::string> outputs;  // format 2: DuplicateStreams writes several (all of outSpec)
  TensorSpec outSpec;
  std::map<std::string, std::string> attrs;  // everything but name/in/out/out_shape/out_dtype/params
  std::map<std::string, int> params;         // "weights" | "thresholds" | "param" -> blob id

  // Typed attribute access; errors name the layer and attribute.
  Status intAttr(const std::string& key, int64_t* out) const;
  Status intsAttr(const std::string& key, std::vector<int64_t>* out) const;
  // An int or a 2-list, as splitter.executor's _pair: "3" -> (3, 3), "3,1" -> (3, 1).
  Status pairAttr(const std::string& key, int64_t* first, int64_t* second) const;
  Status textAttr(const std::string& key, std::string* out) const;
  Status dtypeAttr(const std::string& key, DataType* out) const;
  // intAttr with a default when the attribute is absent.
  Status intAttrOr(const std::string& key, int64_t fallback, int64_t* out) const;
  Status error(const std::string& what) const;
};

class Program {
 public:
  static Status parse(const uint8_t* data, size_t size, const std::string& nameHint, Program* out);
  static Status load(const std::string& path, Program* out);

  const std::string& name() const { return name_; }
  const std::string& inputName() const { return inputNames_[0]; }
  // The whole frame in and out: one tensor, or (version 3) a composite of every input / output line.
  const TensorSpec& input() const { return input_; }
  const TensorSpec& output() const { return output_; }
  // The tensors in boundary order (the input / output lines' order), with their specs.
  const std::vector<std::string>& inputNames() const { return inputNames_; }
  const std::vector<std::string>& outputNames() const { return outputNames_; }
  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  const std::vector<ProgramLayer>& layers() const { return layers_; }
  // True when some layer reads or writes more than one tensor (format version 2).
  bool branches() const;
  // The blob a layer's `key` parameter names, or null if the layer has none.
  const ProgramBlob* param(const ProgramLayer& layer, const std::string& key) const;

 private:
  Status parseLine(const std::string& line, int number, const uint8_t* data, size_t size, size_t dataStart);

  std::string hint_;
  std::string name_;
  std::vector<std::string> inputNames_;
  std::vector<std::string> outputNames_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  TensorSpec input_;
  TensorSpec output_;
  int declaredLayers_ = -1;
  bool sawGraph_ = false;
  bool sawInput_ = false;
  bool sawOutput_ = false;
  bool multiIo_ = false;  // version 3
  std::vector<ProgramLayer> layers_;
  std::map<int, ProgramBlob> blobs_;
};

}  // namespace finnsplit
