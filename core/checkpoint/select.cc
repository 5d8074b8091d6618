#include "core/checkpoint/select.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/checkpoint/float8.h"
#include "core/checkpoint/module_tree.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

using Json = nlohmann::ordered_json;

// Name of a dict key inside a dotted tensor name: strings as they are,
// integers in decimal (optimizer state is keyed by parameter index).
std::string KeyName(const Value& key) {
  if (key.is(Value::Kind::kString)) return key.str();
  if (key.is(Value::Kind::kInt)) return absl::StrCat(key.int_value());
  return key.KeyText();
}

bool IsContainer(const Value& v) {
  return v.is(Value::Kind::kDict) || v.is(Value::Kind::kList) || v.is(Value::Kind::kTuple);
}

bool IsStateDict(const Value& v) {
  if (!v.is(Value::Kind::kDict)) return false;
  for (const auto& [key, value] : v.entries()) {
    if (!value->is(Value::Kind::kTensor)) return false;
  }
  return true;
}

// Tensors below `node` by dotted path; a module below it contributes its
// state dict (module_tree.h), so "model.fc.weight" names the same tensor
// however the module sits in the tree.
absl::Status Flatten(const Value& node, const std::string& prefix, StateDict* out) {
  if (IsModule(node)) {
    return AppendModuleStateDict(node, prefix.empty() ? "" : absl::StrCat(prefix, "."), out);
  }
  auto visit = [&](std::string name, const Value& child) -> absl::Status {
    std::string full = prefix.empty() ? std::move(name) : absl::StrCat(prefix, ".", name);
    if (child.is(Value::Kind::kTensor)) {
      out->emplace_back(std::move(full), child.tensor());
    } else if (IsContainer(child) || IsModule(child)) {
      return Flatten(child, full, out);
    }
    return absl::OkStatus();
  };
  if (node.is(Value::Kind::kDict)) {
    for (const auto& [key, value] : node.entries()) {
      WEIGHTD_RETURN_IF_ERROR(visit(KeyName(*key), *value));
    }
  } else {
    for (size_t i = 0; i < node.items().size(); ++i) {
      WEIGHTD_RETURN_IF_ERROR(visit(absl::StrCat(i), *node.items()[i]));
    }
  }
  return absl::OkStatus();
}

// The dict a path component is looked up in: the node itself, a module's
// `_modules` (so "model.backbone" is model's submodule backbone), or another
// object's attributes.
const Value* Namespace(const Value& node) {
  if (node.is(Value::Kind::kDict)) return &node;
  if (!node.is(Value::Kind::kObject)) return nullptr;
  const Value* state = node.object_state().get();
  if (!state->is(Value::Kind::kDict)) return nullptr;
  if (IsModule(node)) return state->Find("_modules");
  return state;
}

// Where a state dict might be, for the error when none is found: modules
// and (nested) dicts of tensors, topmost first. `*budget` bounds the nodes
// looked at, since a failing AllTensors rescans subtrees below it.
bool AllTensors(const Value& node, int64_t* budget) {  // non-empty dicts, tensors at the leaves
  if (--*budget < 0 || !node.is(Value::Kind::kDict) || node.entries().empty()) return false;
  for (const auto& [key, value] : node.entries()) {
    if (!value->is(Value::Kind::kTensor) && !AllTensors(*value, budget)) return false;
  }
  return true;
}

constexpr size_t kMaxCandidates = 20;

void Candidates(const Value& node, const std::string& path, int64_t* budget,
                std::vector<std::string>* out) {
  if (out->size() > kMaxCandidates || --*budget < 0) return;
  if (!path.empty()) {
    if (IsModule(node)) {
      out->push_back(absl::StrCat(path, " (", node.str(), ")"));
      return;
    }
    if (AllTensors(node, budget)) {
      out->push_back(absl::StrCat(path, " (dict of tensors)"));
      return;
    }
  }
  auto child = [&](const std::string& name, const Value& v) {
    Candidates(v, path.empty() ? name : absl::StrCat(path, ".", name), budget, out);
  };
  if (const Value* ns = Namespace(node)) {
    for (const auto& [key, value] : ns->entries()) child(KeyName(*key), *value);
  } else if (node.is(Value::Kind::kList) || node.is(Value::Kind::kTuple)) {
    for (size_t i = 0; i < node.items().size(); ++i) child(absl::StrCat(i), *node.items()[i]);
  }
}

std::string DescribeCandidates(const Value& root) {
  std::vector<std::string> found;
  int64_t budget = 1 << 20;
  Candidates(root, "", &budget, &found);
  if (found.empty()) return "nothing in the file looks like a state dict or a module";
  if (found.size() > kMaxCandidates) {
    found.resize(kMaxCandidates);
    found.push_back("...");
  }
  return absl::StrCat("candidates for --select: ", absl::StrJoin(found, ", "));
}

// A dict whose leaves are all tensors, some below nested dicts
// ({"layer1": {"weight": t}}); `*first` receives the first leaf's dotted name.
bool IsNestedStateDict(const Value& node, const std::string& prefix, std::string* first,
                       bool* nested) {
  if (!node.is(Value::Kind::kDict) || node.entries().empty()) return false;
  for (const auto& [key, value] : node.entries()) {
    const std::string name =
        prefix.empty() ? KeyName(*key) : absl::StrCat(prefix, ".", KeyName(*key));
    if (value->is(Value::Kind::kTensor)) {
      if (first->empty()) *first = name;
    } else if (IsNestedStateDict(*value, name, first, nested)) {
      *nested = true;
    } else {
      return false;
    }
  }
  return true;
}

bool HasAutoSelectKey(const Value& root) {
  for (const char* key : kAutoSelectKeys) {
    if (root.Find(key) != nullptr) return true;
  }
  return false;
}

std::string DescribeKeys(const Value& node) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : node.entries()) {
    if (keys.size() == 20) {
      keys.push_back("...");
      break;
    }
    keys.push_back(KeyName(*key));
  }
  return absl::StrCat("[", absl::StrJoin(keys, ", "), "]");
}

// Follows `path` from `root`. Dict keys may contain dots, so at each level the
// longest key that is a prefix of what remains (ending at a dot) wins.
absl::StatusOr<const Value*> Walk(const Value& root, absl::string_view path) {
  const Value* node = &root;
  absl::string_view rest = path;
  std::string walked;
  while (!rest.empty()) {
    const Value* next = nullptr;
    size_t used = 0;
    if (const Value* ns = Namespace(*node)) {
      for (const auto& [key, value] : ns->entries()) {
        std::string name = KeyName(*key);
        if (name.size() > used && absl::StartsWith(rest, name) &&
            (rest.size() == name.size() || rest[name.size()] == '.')) {
          next = value.get();
          used = name.size();
        }
      }
      if (next == nullptr) {
        return absl::NotFoundError(absl::StrCat("no key \"", rest, "\" under \"", walked,
                                                "\"; keys there: ", DescribeKeys(*ns)));
      }
    } else if (node->is(Value::Kind::kList) || node->is(Value::Kind::kTuple)) {
      size_t dot = rest.find('.');
      absl::string_view part = rest.substr(0, dot);
      size_t index;
      if (!absl::SimpleAtoi(part, &index) || index >= node->items().size()) {
        return absl::NotFoundError(absl::StrCat("\"", part, "\" is not an index of the ",
                                                node->items().size(), "-item list at \"",
                                                walked, "\""));
      }
      next = node->items()[index].get();
      used = part.size();
    } else {
      return absl::NotFoundError(absl::StrCat("\"", walked, "\" is a ", node->KindName(),
                                              ", cannot select \"", rest, "\" in it"));
    }
    absl::StrAppend(&walked, walked.empty() ? "" : ".", rest.substr(0, used));
    rest.remove_prefix(used);
    if (!rest.empty()) rest.remove_prefix(1);  // the dot
    node = next;
  }
  return node;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The value of a 0-dim tensor as JSON (loss saved as torch.tensor(0.5)).
Json ScalarTensorJson(const TensorRecord& t) {
  const uint8_t* p = t.data();
  auto load = [p](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (t.dtype) {
    case DType::kBool:
      return p[0] != 0;
    case DType::kUInt8:
      return p[0];
    case DType::kInt8:
      return load(int8_t{});
    case DType::kInt16:
      return load(int16_t{});
    case DType::kInt32:
      return load(int32_t{});
    case DType::kInt64:
      return load(int64_t{});
    case DType::kFloat16:
      return HalfToFloat(load(uint16_t{}));
    case DType::kBFloat16: {
      uint32_t bits = uint32_t{load(uint16_t{})} << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    case DType::kFloat32:
      return load(float{});
    case DType::kFloat64:
      return load(double{});
    case DType::kComplex64: {
      float re, im;
      std::memcpy(&re, p, 4);
      std::memcpy(&im, p + 4, 4);
      return Json::array({re, im});
    }
    case DType::kComplex128: {
      double re, im;
      std::memcpy(&re, p, 8);
      std::memcpy(&im, p + 8, 8);
      return Json::array({re, im});
    }
    case DType::kUInt16:
      return load(uint16_t{});
    case DType::kUInt32:
      return load(uint32_t{});
    case DType::kUInt64:
      return load(uint64_t{});
    case DType::kFloat8_e4m3fn:
    case DType::kFloat8_e5m2:
    case DType::kFloat8_e4m3fnuz:
    case DType::kFloat8_e5m2fnuz: {
      // A float8 scalar (a quantization scale, say); NaN/inf become null.
      const float f = Float8ToFloat(p[0], t.dtype);
      if (!std::isfinite(f)) return nullptr;
      return f;
    }
  }
  return nullptr;
}

// Leaves of `node` as JSON; `skip` is the selected subtree. Returns a
// discarded value for nodes with nothing to show (tensors).
Json MetadataOf(const Value& node, const Value* skip) {
  if (&node == skip) return Json(Json::value_t::discarded);
  switch (node.kind()) {
    case Value::Kind::kNone:
      return nullptr;
    case Value::Kind::kBool:
      return node.bool_value();
    case Value::Kind::kInt:
      return node.int_value();
    case Value::Kind::kBigInt:
      return absl::StrCat("<int of ", node.str().size(), " bytes>");
    case Value::Kind::kFloat:
      return node.float_value();
    case Value::Kind::kComplex:
      return Json::array({node.float_value(), node.imag_value()});
    case Value::Kind::kString:
    case Value::Kind::kDevice:
      return node.str();
    case Value::Kind::kBytes:
      return absl::StrCat("<bytes of length ", node.str().size(), ">");
    case Value::Kind::kDType:
      return std::string(DTypeName(node.dtype()));
    case Value::Kind::kGlobal:
      return node.str();
    case Value::Kind::kObject:  // a module's attributes are not metadata
      return Json(Json::value_t::discarded);
    case Value::Kind::kTensor: {
      const TensorRecord& t = node.tensor();
      if (t.shape.empty() && t.data() != nullptr) return ScalarTensorJson(t);
      return Json(Json::value_t::discarded);
    }
    case Value::Kind::kDict: {
      Json out = Json::object();
      for (const auto& [key, value] : node.entries()) {
        Json child = MetadataOf(*value, skip);
        if (!child.is_discarded()) out[KeyName(*key)] = std::move(child);
      }
      return out;
    }
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kSet: {
      Json out = Json::array();
      for (const ValuePtr& item : node.items()) {
        Json child = MetadataOf(*item, skip);
        // Keep positions: a tensor in a list shows as its description.
        if (child.is_discarded() && item->is(Value::Kind::kTensor)) {
          const TensorRecord& t = item->tensor();
          child = absl::StrCat("<tensor ", DTypeName(t.dtype), " ", ShapeToString(t.shape), ">");
        }
        if (!child.is_discarded()) out.push_back(std::move(child));
      }
      return out;
    }
  }
  return Json(Json::value_t::discarded);
}

}  // namespace

absl::StatusOr<Selection> SelectStateDict(const Checkpoint& checkpoint, absl::string_view path) {
  const Value& root = *checkpoint.root;
  Selection selection;
  const Value* node = nullptr;
  std::string first_leaf;
  bool nested = false;
  if (path == kRootSelectPath) {
    if (!IsContainer(root)) {
      return absl::NotFoundError(absl::StrCat(checkpoint.path, ": select \".\": the root is a ",
                                              root.KindName(), ", not a dict of tensors"));
    }
    node = &root;
  } else if (!path.empty()) {
    absl::StatusOr<const Value*> found = Walk(root, path);
    if (!found.ok()) {
      return absl::NotFoundError(
          absl::StrCat(checkpoint.path, ": select \"", path, "\": ", found.status().message()));
    }
    node = *found;
    selection.path = std::string(path);
    if (!IsContainer(*node) && !IsModule(*node)) {
      return absl::NotFoundError(absl::StrCat(
          checkpoint.path, ": select \"", path, "\" is a ",
          node->is(Value::Kind::kObject) ? absl::StrCat(node->str(), " object")
                                         : std::string(node->KindName()),
          ", not a module or a dict of tensors; ", DescribeCandidates(root)));
    }
  } else if (IsStateDict(root) || IsModule(root)) {
    node = &root;
  } else if (IsNestedStateDict(root, "", &first_leaf, &nested) && nested &&
             !HasAutoSelectKey(root)) {
    return absl::NotFoundError(absl::StrCat(
        checkpoint.path, ": the root is a nested dict of tensors (", first_leaf,
        "...), not a flat state dict; --select . takes it with dotted names"));
  } else if (root.is(Value::Kind::kDict)) {
    for (const char* key : kAutoSelectKeys) {
      const Value* candidate = root.Find(key);
      if (candidate != nullptr && (candidate->is(Value::Kind::kDict) || IsModule(*candidate))) {
        node = candidate;
        selection.path = key;
        break;
      }
    }
    if (node == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          checkpoint.path, ": no state dict found: the root is a dict with keys ",
          DescribeKeys(root), " and none of state_dict, model_state_dict, model, module; "
          "choose one with --select; ", DescribeCandidates(root)));
    }
  } else if (root.is(Value::Kind::kTensor)) {
    return absl::NotFoundError(absl::StrCat(
        checkpoint.path, ": the root is a single tensor (", DTypeName(root.tensor().dtype), " ",
        ShapeToString(root.tensor().shape),
        "), not a state dict; save a dict of tensors instead, e.g. torch.save({\"weight\": t}, "
        "path)"));
  } else {
    return absl::NotFoundError(absl::StrCat(
        checkpoint.path, ": the root is a ",
        root.is(Value::Kind::kObject) ? absl::StrCat(root.str(), " object") : std::string(root.KindName()),
        ", not a module or a dict of tensors; ", DescribeCandidates(root)));
  }
  absl::Status flattened = Flatten(*node, "", &selection.tensors);
  if (!flattened.ok()) {
    return absl::Status(flattened.code(),
                        absl::StrCat(checkpoint.path, ": ", flattened.message()));
  }
  for (ModuleInfo& module : ListModules(*node)) {
    if (!selection.path.empty()) {
      module.path = module.path.empty() ? selection.path
                                        : absl::StrCat(selection.path, ".", module.path);
    }
    selection.modules.push_back(std::move(module));
  }
  return selection;
}

nlohmann::ordered_json Metadata(const Checkpoint& checkpoint, absl::string_view selected_path) {
  const Value* skip = checkpoint.root.get();
  if (!selected_path.empty()) {
    absl::StatusOr<const Value*> found = Walk(*checkpoint.root, selected_path);
    skip = found.ok() ? *found : nullptr;
  }
  Json out = MetadataOf(*checkpoint.root, skip);
  if (!out.is_object()) out = Json::object();
  if (!checkpoint.file_metadata.empty()) {
    Json file = Json::object();
    for (const auto& [key, value] : checkpoint.file_metadata) file[key] = value;
    out["__metadata__"] = std::move(file);
  }
  return out;
}

}  // namespace weightd
