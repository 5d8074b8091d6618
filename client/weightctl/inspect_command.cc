// weightctl inspect FILE: what a checkpoint holds, without Python.
#include <cinttypes>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/weightctl/commands.h"
#include "core/checkpoint/select.h"
#include "core/format/checkpoint_io.h"

namespace weightd::cli {
namespace {

using Json = nlohmann::ordered_json;

int RunInspect(const ParsedArgs& args) {
  const std::string& path = args.positional[0];
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(path);
  if (!checkpoint.ok()) return Fail(checkpoint.status().message());
  std::string select = args.Get("select").value_or("");
  absl::StatusOr<Selection> selection = SelectStateDict(*checkpoint, select);
  if (!selection.ok()) return Fail(selection.status().message());
  const bool checksums = args.Has("checksums");
  Json metadata = Metadata(*checkpoint, selection->path);

  if (args.Has("json")) {
    Json tensors = Json::array();
    for (const auto& [name, t] : selection->tensors) {
      Json entry = {{"name", name},
                    {"dtype", std::string(DTypeName(t.dtype))},
                    {"shape", t.shape},
                    {"nbytes", t.nbytes()}};
      if (checksums) entry["checksum"] = absl::StrFormat("%016x", t.Checksum());
      tensors.push_back(std::move(entry));
    }
    Json modules = Json::array();
    for (const ModuleInfo& m : selection->modules) {
      modules.push_back({{"path", m.path}, {"class", m.class_name}});
    }
    Json out = {{"format", checkpoint->format},
                {"select", selection->path},
                {"tensors", std::move(tensors)},
                {"metadata", std::move(metadata)}};
    if (!modules.empty()) out["modules"] = std::move(modules);
    std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl;
    return 0;
  }

  uint64_t total = 0;
  size_t width = 4;
  for (const auto& [name, t] : selection->tensors) {
    total += t.nbytes();
    width = std::max(width, name.size());
  }
  std::cout << "file:    " << path << "\n"
            << "format:  " << checkpoint->format << "\n"
            << "select:  " << (selection->path.empty() ? "(root)" : selection->path)
            << (select.empty() && !selection->path.empty() ? " (automatic)" : "") << "\n"
            << "tensors: " << selection->tensors.size() << ", " << HumanBytes(total) << "\n\n";
  std::cout << absl::StrFormat("  %-*s  %-10s  %-20s  %12s%s\n", width, "name", "dtype", "shape",
                               "bytes", checksums ? "  xxh64" : "");
  for (const auto& [name, t] : selection->tensors) {
    std::cout << absl::StrFormat("  %-*s  %-10s  %-20s  %12d", width, name, DTypeName(t.dtype),
                                 ShapeToString(t.shape), t.nbytes());
    if (checksums) std::cout << absl::StrFormat("  %016x", t.Checksum());
    std::cout << "\n";
  }
  if (!selection->modules.empty()) {
    // Whole-model file: the classes of the module tree, as named in the file.
    std::cout << "\nmodules: " << selection->modules.size() << "\n";
    for (const ModuleInfo& m : selection->modules) {
      std::cout << "  " << (m.path.empty() ? "(root)" : m.path) << ": " << m.class_name << "\n";
    }
  }
  if (!metadata.empty()) std::cout << "\nmetadata: " << metadata.dump(2) << "\n";
  return 0;
}

}  // namespace

Command InspectCommand() {
  Command c;
  c.name = "inspect";
  c.usage = "inspect FILE [--select PATH] [--json] [--checksums]";
  c.summary = "Lists the tensors (name, dtype, shape, bytes) and metadata of a checkpoint file.";
  c.details =
      "Whole-model files (torch.save(model), zip or legacy) are read without running any\n"
      "code: module classes become inert records of their name and pickled state, and\n"
      "the tensors are what the default nn.Module.state_dict() returns (_parameters,\n"
      "persistent _buffers, then _modules, in registration order). State-dict hooks,\n"
      "an overridden _save_to_state_dict or get_extra_state live in the class's code,\n"
      "not in the file, and are not applied. --select walks submodules\n"
      "(--select model.backbone names tensors relative to backbone); the module classes\n"
      "are listed under 'modules'. A call in the file other than plain instantiation\n"
      "(and a short allowlist, e.g. functools.partial) is refused, naming the global.\n";
  c.flags = {
      {"select", true,
       "PATH  state dict or module to list (default: automatic, see DESIGN.md section 2)"},
      {"json", false, "prints one JSON object: format, select, tensors, metadata, modules"},
      {"checksums", false, "adds each tensor's xxHash64 (seed 0) of its row-major bytes"},
  };
  c.min_positional = c.max_positional = 1;
  c.run = RunInspect;
  return c;
}

}  // namespace weightd::cli
