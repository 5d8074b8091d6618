// Choosing the state dict inside a checkpoint tree, and its metadata.
#ifndef WEIGHTD_CORE_CHECKPOINT_SELECT_H_
#define WEIGHTD_CORE_CHECKPOINT_SELECT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/checkpoint/checkpoint.h"
#include "core/checkpoint/module_tree.h"
#include "nlohmann/json.hpp"

namespace weightd {

// Keys tried, in order, when no path is given and the root is not itself a
// state dict (DESIGN.md section 2).
inline constexpr const char* kAutoSelectKeys[] = {"state_dict", "model_state_dict", "model",
                                                  "module"};

// The path that selects the root itself, nested dicts included: tensors
// below nested dicts get dotted names ({"a": {"w": t}} gives "a.w").
inline constexpr absl::string_view kRootSelectPath = ".";

struct Selection {
  std::string path;  // the path used ("" = the root)
  StateDict tensors;
  // Whole-model files: the modules of the selected subtree (paths from the
  // root, "" = the root itself), parents first; empty for plain state dicts.
  std::vector<ModuleInfo> modules;
};

// Selects the state dict at `path` ("model_state_dict", "ema", "a.b", "list.0"
// for list items; a dict key containing dots is matched whole). Tensors nested
// below the selected node are named with dotted paths. In a whole-model file
// a path goes through submodules ("model.backbone") and a selected module
// yields what its default nn.Module.state_dict() would (module_tree.h), named
// relative to it. With an empty `path` the root is taken if it is a module or
// all its values are tensors, else the first of kAutoSelectKeys present that
// is a dict or a module; a root that is a nested dict of tensors, or a bare
// tensor, is NotFound with a message saying so and what to do (a nested dict:
// select kRootSelectPath). NotFound names the missing part and what exists;
// when no state dict is found it lists the candidate paths (modules, dicts of
// tensors) for --select.
absl::StatusOr<Selection> SelectStateDict(const Checkpoint& checkpoint, absl::string_view path);

// Non-tensor leaves of the tree outside the subtree at `selected_path`
// (epoch, loss, strings, None...) as JSON,
// nested like the tree; tensors outside the selection are left out, except
// 0-dim numeric ones (loss saved as a tensor), which appear as numbers.
// safetensors "__metadata__" appears under that key.
nlohmann::ordered_json Metadata(const Checkpoint& checkpoint, absl::string_view selected_path);

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_SELECT_H_
