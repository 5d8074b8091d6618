// The module objects of a whole-model pickle (torch.save(model)) and the
// state dict they hold.
//
// A module here is an inert Value::Object whose BUILD state looks like
// torch.nn.Module's __dict__. Its state dict is what PyTorch's default
// nn.Module.state_dict() returns: class code is never run, so custom
// state_dict hooks, an overridden _save_to_state_dict and get_extra_state
// (all of which live in the class, not in the file) do not take part.
#ifndef WEIGHTD_CORE_CHECKPOINT_MODULE_TREE_H_
#define WEIGHTD_CORE_CHECKPOINT_MODULE_TREE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/checkpoint/checkpoint.h"
#include "core/checkpoint/value.h"

namespace weightd {

// True for an object whose state is a dict with the dicts `_parameters`,
// `_buffers` and `_modules` (every nn.Module's __dict__ has them).
bool IsModule(const Value& v);

// The submodule `name` of `module` (its `_modules[name]`), or nullptr.
const Value* FindSubmodule(const Value& module, absl::string_view name);

// Appends module.state_dict(prefix=`prefix`) to `out`, in PyTorch's order:
// `_parameters` (skipping None), `_buffers` (skipping None and the names in
// `_non_persistent_buffers_set`), then each of `_modules` (skipping None)
// with "name." added to the prefix, in registration order. DataLoss when a
// parameter or buffer is neither a tensor nor None. `module` must satisfy
// IsModule; the tree's depth is bounded by the unpickler.
absl::Status AppendModuleStateDict(const Value& module, const std::string& prefix, StateDict* out);

struct ModuleInfo {
  std::string path;        // dotted path from the root ("model.backbone"); "" = root
  std::string class_name;  // "torchvision.models.resnet.ResNet"
};

// The modules of the tree under `root`, parents before children, in
// registration order; below a module only its `_modules` are followed.
// Stops after `limit` entries.
std::vector<ModuleInfo> ListModules(const Value& root, size_t limit = 10000);

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_MODULE_TREE_H_
