#include "core/checkpoint/module_tree.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

const Value* StateDictOf(const Value& v) {
  if (!v.is(Value::Kind::kObject)) return nullptr;
  const Value& state = *v.object_state();
  return state.is(Value::Kind::kDict) ? &state : nullptr;
}

const Value* DictAttr(const Value& state, absl::string_view name) {
  const Value* d = state.Find(name);
  return d != nullptr && d->is(Value::Kind::kDict) ? d : nullptr;
}

// Strings as they are, integers in decimal (as select.cc names dict keys).
std::string KeyName(const Value& key) {
  if (key.is(Value::Kind::kString)) return key.str();
  if (key.is(Value::Kind::kInt)) return absl::StrCat(key.int_value());
  return key.KeyText();
}

bool Contains(const Value* set, const Value& key) {
  if (set == nullptr || !key.is(Value::Kind::kString)) return false;
  for (const ValuePtr& item : set->items()) {
    if (item->is(Value::Kind::kString) && item->str() == key.str()) return true;
  }
  return false;
}

absl::Status AppendTensors(const Value& dict, const Value* skip, absl::string_view what,
                           const Value& module, const std::string& prefix, StateDict* out) {
  for (const auto& [key, value] : dict.entries()) {
    if (value->is(Value::Kind::kNone) || Contains(skip, *key)) continue;
    std::string name = absl::StrCat(prefix, KeyName(*key));
    if (!value->is(Value::Kind::kTensor)) {
      return absl::DataLossError(absl::StrCat(what, " \"", name, "\" of a ", module.str(), " is a ",
                                              value->KindName(), ", not a tensor"));
    }
    out->emplace_back(std::move(name), value->tensor());
  }
  return absl::OkStatus();
}

// Whether List can find a module at or below `v`.
bool MayHoldModules(const Value& v) {
  return v.is(Value::Kind::kObject) || v.is(Value::Kind::kDict) || v.is(Value::Kind::kList) ||
         v.is(Value::Kind::kTuple);
}

void List(const Value& node, const std::string& path, size_t limit, std::vector<ModuleInfo>* out) {
  if (out->size() >= limit) return;
  // Leaves (a state dict's tensors) get no path built: one string per
  // tensor was most of this walk.
  auto child = [&](const std::string& name, const Value& v) {
    List(v, path.empty() ? name : absl::StrCat(path, ".", name), limit, out);
  };
  switch (node.kind()) {
    case Value::Kind::kObject: {
      const Value* state = StateDictOf(node);
      if (state == nullptr) return;
      if (IsModule(node)) {
        out->push_back({path, node.str()});
        state = DictAttr(*state, "_modules");
      }
      for (const auto& [key, value] : state->entries()) {
        if (MayHoldModules(*value)) child(KeyName(*key), *value);
      }
      return;
    }
    case Value::Kind::kDict:
      for (const auto& [key, value] : node.entries()) {
        if (MayHoldModules(*value)) child(KeyName(*key), *value);
      }
      return;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      for (size_t i = 0; i < node.items().size(); ++i) {
        if (MayHoldModules(*node.items()[i])) child(absl::StrCat(i), *node.items()[i]);
      }
      return;
    default:
      return;
  }
}

}  // namespace

bool IsModule(const Value& v) {
  const Value* state = StateDictOf(v);
  return state != nullptr && DictAttr(*state, "_parameters") != nullptr &&
         DictAttr(*state, "_buffers") != nullptr && DictAttr(*state, "_modules") != nullptr;
}

const Value* FindSubmodule(const Value& module, absl::string_view name) {
  if (!IsModule(module)) return nullptr;
  const Value* child = DictAttr(*StateDictOf(module), "_modules")->Find(name);
  return child != nullptr && IsModule(*child) ? child : nullptr;
}

absl::Status AppendModuleStateDict(const Value& module, const std::string& prefix, StateDict* out) {
  const Value& state = *StateDictOf(module);
  WEIGHTD_RETURN_IF_ERROR(
      AppendTensors(*DictAttr(state, "_parameters"), nullptr, "parameter", module, prefix, out));
  // torch >= 1.6; older modules have no non-persistent buffers.
  const Value* non_persistent = state.Find("_non_persistent_buffers_set");
  if (non_persistent != nullptr && !non_persistent->is(Value::Kind::kSet)) non_persistent = nullptr;
  WEIGHTD_RETURN_IF_ERROR(
      AppendTensors(*DictAttr(state, "_buffers"), non_persistent, "buffer", module, prefix, out));
  for (const auto& [key, child] : DictAttr(state, "_modules")->entries()) {
    if (child->is(Value::Kind::kNone)) continue;
    std::string name = absl::StrCat(prefix, KeyName(*key));
    if (!IsModule(*child)) {
      return absl::DataLossError(absl::StrCat(
          "submodule \"", name, "\" of a ", module.str(), " is a ",
          child->is(Value::Kind::kObject) ? child->str() : std::string(child->KindName()),
          ", not a module"));
    }
    WEIGHTD_RETURN_IF_ERROR(AppendModuleStateDict(*child, absl::StrCat(name, "."), out));
  }
  return absl::OkStatus();
}

std::vector<ModuleInfo> ListModules(const Value& root, size_t limit) {
  std::vector<ModuleInfo> out;
  List(root, "", limit, &out);
  return out;
}

}  // namespace weightd
