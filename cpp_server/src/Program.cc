#include "Program.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "Crc32.h"

namespace finnsplit {
namespace {

const char kMagic[] = "FINNSPLIT-PROGRAM";
const char kVersion[] = "1";           // a chain
const char kBranchingVersion[] = "2";  // in=a,b / out=a,b lists (residual networks)
const char kBoundaryVersion[] = "3";   // several input / output lines (a cut inside a residual block)
constexpr size_t kBlobAlign = 64;

bool parseInt(const std::string& text, int64_t* out) {
  if (text.empty() || text.size() > 20) return false;
  size_t i = text[0] == '-' ? 1 : 0;
  if (i == text.size()) return false;
  int64_t value = 0;
  for (; i < text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
    int digit = text[i] - '0';
    if (value > (INT64_MAX - digit) / 10) return false;
    value = value * 10 + digit;
  }
  *out = text[0] == '-' ? -value : value;
  return true;
}

bool parseIntList(const std::string& text, std::vector<int64_t>* out) {
  std::vector<int64_t> values;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    int64_t v;
    if (!parseInt(text.substr(pos, comma - pos), &v)) return false;
    values.push_back(v);
    pos = comma + 1;
  }
  *out = std::move(values);
  return true;
}

std::vector<std::string> splitWhitespace(const std::string& line) {
  std::vector<std::string> tokens;
  std::istringstream in(line);
  std::string token;
  while (in >> token) tokens.push_back(token);
  return tokens;
}

// "a,b" -> {"a", "b"}; "a" -> {"a"}; empty items are kept (the caller rejects them).
std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    items.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

Status keyValues(const std::vector<std::string>& tokens, size_t first, const std::string& where,
                 std::map<std::string, std::string>* out) {
  for (size_t i = first; i < tokens.size(); ++i) {
    size_t eq = tokens[i].find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == tokens[i].size()) {
      return Status::error(where + ": malformed token '" + tokens[i].substr(0, 60) + "'");
    }
    (*out)[tokens[i].substr(0, eq)] = tokens[i].substr(eq + 1);
  }
  return Status::ok();
}

Status specOf(const std::string& dtypeText, const std::string& shapeText, const std::string& where, TensorSpec* spec) {
  DataType dtype;
  Status st = DataType::parse(dtypeText, &dtype);
  if (!st) return st.withContext(where);
  std::vector<int64_t> dims;
  st = TensorSpec::parseDims(shapeText, &dims);
  if (!st) return st.withContext(where);
  *spec = TensorSpec(dtype, dims);
  return Status::ok();
}

Status tensorLine(const std::map<std::string, std::string>& kv, const std::string& where, std::string* name,
                  TensorSpec* spec) {
  auto n = kv.find("name");
  auto s = kv.find("shape");
  auto d = kv.find("dtype");
  if (n == kv.end() || s == kv.end() || d == kv.end()) return Status::error(where + ": needs name, shape and dtype");
  Status st = specOf(d->second, s->second, where, spec);
  if (st) *name = n->second;
  return st;
}

int itemSize(const std::string& dtype, bool* isSigned) {
  static const struct {
    const char* name;
    int size;
    bool isSigned;
  } kTypes[] = {{"int8", 1, true},  {"int16", 2, true},  {"int32", 4, true}, {"int64", 8, true},
                {"uint8", 1, false}, {"uint16", 2, false}, {"uint32", 4, false}};
  for (const auto& t : kTypes) {
    if (dtype == t.name) {
      *isSigned = t.isSigned;
      return t.size;
    }
  }
  return 0;
}

Status readBlob(const std::map<std::string, std::string>& kv, const uint8_t* data, size_t size, size_t dataStart,
                const std::string& where, int* id, ProgramBlob* blob) {
  int64_t blobId, offset, nbytes, crc;
  bool isSigned = true;
  auto get = [&](const char* key) -> const std::string* {
    auto it = kv.find(key);
    return it == kv.end() ? nullptr : &it->second;
  };
  const std::string* idText = get("id");
  const std::string* offText = get("offset");
  const std::string* nbText = get("nbytes");
  const std::string* dtText = get("dtype");
  const std::string* shText = get("shape");
  const std::string* crcText = get("crc32");
  if (!idText || !offText || !nbText || !dtText || !shText || !crcText || !parseInt(*idText, &blobId) ||
      !parseInt(*offText, &offset) || !parseInt(*nbText, &nbytes) || blobId < 0 || blobId > 1000000 ||
      crcText->size() != 8) {
    return Status::error(where + ": bad blob line");
  }
  char* end = nullptr;
  crc = static_cast<int64_t>(std::strtoull(crcText->c_str(), &end, 16));
  if (*end != '\0') return Status::error(where + ": bad blob crc32 '" + *crcText + "'");
  int width = itemSize(*dtText, &isSigned);
  if (width == 0) return Status::error(where + ": blob dtype '" + *dtText + "' is not int8, int16, int32 or int64");
  std::vector<int64_t> dims;
  Status st = TensorSpec::parseDims(*shText, &dims);
  if (!st) return st.withContext(where);
  if (offset < 0 || nbytes < 0 || static_cast<uint64_t>(offset) > size ||
      dataStart + static_cast<uint64_t>(offset) + static_cast<uint64_t>(nbytes) > size) {
    return Status::error(where + ": blob " + std::to_string(blobId) + " lies outside the file (truncated?)");
  }
  const uint8_t* raw = data + dataStart + offset;
  if (crc32Update(0, raw, static_cast<size_t>(nbytes)) != static_cast<uint32_t>(crc)) {
    return Status::error(where + ": blob " + std::to_string(blobId) + " CRC mismatch (corrupted file)");
  }
  const int64_t count = numElements(dims);
  if (count * width != nbytes) {
    return Status::error(where + ": blob " + std::to_string(blobId) + " shape " + *shText + " does not match " +
                         std::to_string(nbytes) + " bytes");
  }
  blob->shape = dims;
  blob->values.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    uint64_t code = 0;
    for (int b = width - 1; b >= 0; --b) code = (code << 8) | raw[i * width + b];
    int unused = 64 - 8 * width;
    blob->values[i] = isSigned ? static_cast<int64_t>(code << unused) >> unused : static_cast<int64_t>(code);
  }
  *id = static_cast<int>(blobId);
  return Status::ok();
}

}  // namespace

Status ProgramLayer::error(const std::string& what) const {
  return Status::error("layer " + name + " (" + opType + "): " + what);
}

Status ProgramLayer::textAttr(const std::string& key, std::string* out) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return error("missing attribute " + key);
  *out = it->second;
  return Status::ok();
}

Status ProgramLayer::intAttr(const std::string& key, int64_t* out) const {
  std::string text;
  Status st = textAttr(key, &text);
  if (!st) return st;
  if (!parseInt(text, out)) return error("attribute " + key + "=" + text + " is not an integer");
  return Status::ok();
}

Status ProgramLayer::intAttrOr(const std::string& key, int64_t fallback, int64_t* out) const {
  if (attrs.find(key) == attrs.end()) {
    *out = fallback;
    return Status::ok();
  }
  return intAttr(key, out);
}

Status ProgramLayer::intsAttr(const std::string& key, std::vector<int64_t>* out) const {
  std::string text;
  Status st = textAttr(key, &text);
  if (!st) return st;
  if (!parseIntList(text, out)) return error("attribute " + key + "=" + text + " is not an integer list");
  return Status::ok();
}

Status ProgramLayer::pairAttr(const std::string& key, int64_t* first, int64_t* second) const {
  std::vector<int64_t> values;
  Status st = intsAttr(key, &values);
  if (!st) return st;
  if (values.size() == 1) values.push_back(values[0]);
  if (values.size() < 2) return error("attribute " + key + " needs one or two integers");
  *first = values[0];
  *second = values[1];
  return Status::ok();
}

Status ProgramLayer::dtypeAttr(const std::string& key, DataType* out) const {
  std::string text;
  Status st = textAttr(key, &text);
  if (!st) return st;
  st = DataType::parse(text, out);
  return st ? st : error(st.message());
}

const ProgramBlob* Program::param(const ProgramLayer& layer, const std::string& key) const {
  auto it = layer.params.find(key);
  if (it == layer.params.end()) return nullptr;
  auto blob = blobs_.find(it->second);
  return blob == blobs_.end() ? nullptr : &blob->second;
}

Status Program::parseLine(const std::string& line, int number, const uint8_t* data, size_t size, size_t dataStart) {
  std::string where = hint_ + " line " + std::to_string(number);
  std::vector<std::string> tokens = splitWhitespace(line);
  if (tokens.empty()) return Status::error(where + ": empty line");
  std::map<std::string, std::string> kv;
  const std::string& kind = tokens[0];
  if (kind == "layer") {
    if (tokens.size() < 2) return Status::error(where + ": layer without op type");
    Status st = keyValues(tokens, 2, where, &kv);
    if (!st) return st;
    ProgramLayer layer;
    layer.opType = tokens[1];
    const char* required[] = {"name", "in", "out", "out_shape", "out_dtype"};
    for (const char* key : required) {
      if (kv.find(key) == kv.end()) return Status::error(where + ": layer lacks " + key);
    }
    layer.name = kv["name"];
    layer.inputs = splitList(kv["in"]);
    layer.outputs = splitList(kv["out"]);
    for (const auto* names : {&layer.inputs, &layer.outputs}) {
      for (const std::string& name : *names) {
        if (name.empty()) return Status::error(where + ": empty tensor name in in= or out=");
      }
    }
    layer.input = layer.inputs[0];
    layer.output = layer.outputs[0];
    st = specOf(kv["out_dtype"], kv["out_shape"], where, &layer.outSpec);
    if (!st) return st;
    for (const char* key : required) kv.erase(key);
    for (const char* key : {"weights", "thresholds", "param"}) {
      auto it = kv.find(key);
      if (it == kv.end()) continue;
      int64_t id;
      if (!parseInt(it->second, &id) || id < 0 || id > 1000000) return Status::error(where + ": bad blob id");
      layer.params[key] = static_cast<int>(id);
      kv.erase(it);
    }
    layer.attrs = std::move(kv);
    layers_.push_back(std::move(layer));
    return Status::ok();
  }
  Status st = keyValues(tokens, 1, where, &kv);
  if (!st) return st;
  if (kind == "graph") {
    sawGraph_ = true;
    name_ = kv.count("name") ? kv["name"] : hint_;
    int64_t count;
    if (kv.count("layers") && parseInt(kv["layers"], &count)) declaredLayers_ = static_cast<int>(count);
    return Status::ok();
  }
  if (kind == "input" || kind == "output") {
    bool input = kind == "input";
    std::vector<std::string>& names = input ? inputNames_ : outputNames_;
    std::vector<TensorSpec>& specs = input ? inputs_ : outputs_;
    if (!names.empty() && !multiIo_) {
      return Status::error(where + ": a second " + kind + " line needs program format version " + kBoundaryVersion);
    }
    if (names.size() >= 16) return Status::error(where + ": more than 16 " + kind + " lines");
    std::string name;
    TensorSpec spec;
    st = tensorLine(kv, where, &name, &spec);
    if (!st) return st;
    for (const std::string& other : names) {
      if (other == name) return Status::error(where + ": " + kind + " '" + name + "' is declared twice");
    }
    names.push_back(name);
    specs.push_back(spec);
    (input ? sawInput_ : sawOutput_) = true;
    return Status::ok();
  }
  if (kind == "blob") {
    int id = -1;
    ProgramBlob blob;
    st = readBlob(kv, data, size, dataStart, where, &id, &blob);
    if (!st) return st;
    blobs_[id] = std::move(blob);
    return Status::ok();
  }
  return Status::error(where + ": unknown line kind '" + kind.substr(0, 40) + "'");
}

Status Program::parse(const uint8_t* data, size_t size, const std::string& nameHint, Program* out) {
  Program program;
  program.hint_ = nameHint;
  const char kEnd[] = "\nend\n";
  const uint8_t* found = static_cast<const uint8_t*>(memmem(data, size, kEnd, 5));
  if (!found) return Status::error(nameHint + ": no 'end' line (truncated or not a program file)");
  size_t end = static_cast<size_t>(found - data);
  size_t headerLength = end + 5;
  size_t dataStart = (headerLength + kBlobAlign - 1) / kBlobAlign * kBlobAlign;
  std::string header(reinterpret_cast<const char*>(data), end);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t nl = header.find('\n', pos);
    if (nl == std::string::npos) nl = header.size();
    lines.push_back(header.substr(pos, nl - pos));
    pos = nl + 1;
  }
  std::vector<std::string> magic = splitWhitespace(lines[0]);
  if (magic.size() != 2 || magic[0] != kMagic) {
    return Status::error(nameHint + ": not a finnsplit program (first line '" + lines[0].substr(0, 40) + "')");
  }
  if (magic[1] != kVersion && magic[1] != kBranchingVersion && magic[1] != kBoundaryVersion) {
    return Status::error(nameHint + ": program format version " + magic[1] + " (this reader knows " + kVersion +
                         ", " + kBranchingVersion + " and " + kBoundaryVersion + ")");
  }
  bool branching = magic[1] != kVersion;
  program.multiIo_ = magic[1] == kBoundaryVersion;
  for (size_t i = 1; i < lines.size(); ++i) {
    Status st = program.parseLine(lines[i], static_cast<int>(i + 1), data, size, dataStart);
    if (!st) return st;
  }
  if (!program.sawGraph_ || !program.sawInput_ || !program.sawOutput_) {
    return Status::error(nameHint + ": missing graph, input or output line");
  }
  program.input_ = TensorSpec::concat(program.inputs_);
  program.output_ = TensorSpec::concat(program.outputs_);
  std::string previous = program.inputNames_[0];
  // versions 2 and 3: each tensor is one stream, read once
  std::set<std::string> unread(program.inputNames_.begin(), program.inputNames_.end());
  for (const ProgramLayer& layer : program.layers_) {
    if (!branching && (layer.input != previous || layer.inputs.size() != 1 || layer.outputs.size() != 1)) {
      return Status::error(nameHint + ": layer " + layer.name + " reads '" + layer.input + "', expected '" + previous + "'");
    }
    if (branching) {
      for (const std::string& name : layer.inputs) {
        if (!unread.erase(name)) {
          return Status::error(nameHint + ": layer " + layer.name + " reads '" + name +
                               "', which no earlier layer writes or another layer already reads");
        }
      }
      for (const std::string& name : layer.outputs) unread.insert(name);
    }
    for (const auto& param : layer.params) {
      if (!program.blobs_.count(param.second)) {
        return Status::error(nameHint + ": layer " + layer.name + " refers to unknown blob " + std::to_string(param.second));
      }
    }
    previous = layer.output;
  }
  if (static_cast<int>(program.layers_.size()) != program.declaredLayers_) {
    return Status::error(nameHint + ": header says " + std::to_string(program.declaredLayers_) + " layers, found " +
                         std::to_string(program.layers_.size()));
  }
  if (program.multiIo_) {
    // version 3: the tensors written and never read are exactly the outputs, as their lines declare them
    std::set<std::string> outs(program.outputNames_.begin(), program.outputNames_.end());
    if (unread != outs) {
      return Status::error(nameHint + ": the output lines are not the tensors written and never read");
    }
    std::map<std::string, const TensorSpec*> written;
    for (const ProgramLayer& layer : program.layers_) {
      for (const std::string& name : layer.outputs) written[name] = &layer.outSpec;
    }
    for (size_t i = 0; i < program.outputNames_.size(); ++i) {
      auto it = written.find(program.outputNames_[i]);
      if (it == written.end() || *it->second != program.outputs_[i]) {
        return Status::error(nameHint + ": output '" + program.outputNames_[i] + "' is not written as declared");
      }
    }
    *out = std::move(program);
    return Status::ok();
  }
  if (branching && (unread.size() != 1 || *unread.begin() != previous)) {
    return Status::error(nameHint + ": a tensor is written but never read besides the last layer's output");
  }
  if (previous != program.outputNames_[0]) {
    return Status::error(nameHint + ": last layer writes '" + previous + "' but output is '" + program.outputNames_[0] +
                         "'");
  }
  *out = std::move(program);
  return Status::ok();
}

bool Program::branches() const {
  if (inputs_.size() > 1 || outputs_.size() > 1) return true;
  for (const ProgramLayer& layer : layers_) {
    if (layer.inputs.size() > 1 || layer.outputs.size() > 1) return true;
  }
  return false;
}

Status Program::load(const std::string& path, Program* out) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Status::error("cannot open program " + path + ": " + std::strerror(errno));
  std::vector<uint8_t> data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::string hint = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  return parse(data.data(), data.size(), hint, out);
}

}  // namespace finnsplit
