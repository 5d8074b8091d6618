// The matching planner: which source tensor goes into which target tensor,
// and what PyTorch's load_state_dict would say about it (DESIGN.md section 3).
//
// Pure functions over name/dtype/shape lists: no files, no tensor bytes. The
// same engine serves `weightctl match`, the server's Match and Fetch and the
// client's Load.
//
// Semantics follow `module.load_state_dict(renamed_state_dict)`, strict=True
// by default as in PyTorch:
//   - a target key whose (renamed) source has another shape is a size
//     mismatch; it is in `mismatched` and in neither missing nor unexpected,
//     and under ShapePolicy::kError the load fails (PyTorch raises even with
//     strict=False);
//   - under ShapePolicy::kSkip the mismatched source is left out and the
//     target key keeps its initial value: the tutorials' recipe
//     (`model_dict.update(filtered); model.load_state_dict(model_dict)`),
//     which succeeds with strict=True. So a skipped key is reported in
//     `mismatched` only, not in missing_keys, and fails no load;
//   - a match that pairs no tensor at all is an error unless allow_empty:
//     a load that writes nothing is almost always a prefix mistake;
//   - dtype differences are converted on copy (Tensor.copy_), not errors;
//   - a missing "P.num_batches_tracked" is not reported when the source has
//     no key under "P." at all: PyTorch's BatchNorm fills it with 0 then
//     (no version metadata for that module).
// One difference, by design: PyTorch only sees the module tree, so a source
// key that extends a parameter name ("fc.weight.x") or names a module
// ("layer1") is silently dropped there; here it is unexpected.
#ifndef WEIGHTD_CORE_MATCH_MATCH_H_
#define WEIGHTD_CORE_MATCH_MATCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/checkpoint/checkpoint.h"
#include "core/checkpoint/dtype.h"
#include "core/match/rules.h"
#include "nlohmann/json.hpp"

namespace weightd {

// One tensor of a source checkpoint or a target module, by description.
struct TensorEntry {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
};

// The entries of a state dict, in its order.
std::vector<TensorEntry> EntriesFromStateDict(const StateDict& state_dict);

enum class ShapePolicy { kError, kSkip };

struct MatchOptions {
  ShapePolicy on_shape_mismatch = ShapePolicy::kError;
  // Fail when missing or unexpected keys remain after the ignore patterns:
  // load_state_dict(strict=True), PyTorch's default. false: strict=False.
  bool strict = true;
  // Allow a match that pairs zero tensors (else it fails, naming how many
  // target names the checkpoint has).
  bool allow_empty = false;
};

// The prefixes `auto` tries, each as strip_prefix and as add_prefix:
// DataParallel/DDP, torch.compile, and the usual wrapper attribute names.
inline constexpr const char* kAutoPrefixes[] = {"module.", "_orig_mod.", "model.", "backbone.",
                                                "encoder."};

struct MatchedPair {
  std::string source;  // name in the checkpoint
  std::string target;  // name in the target module
  std::vector<int64_t> shape;
  DType source_dtype = DType::kFloat32;
  DType target_dtype = DType::kFloat32;
  uint64_t bytes = 0;  // of the source tensor, as stored
};

struct ShapeMismatch {
  std::string key;     // target name
  std::string source;  // name in the checkpoint
  std::vector<int64_t> source_shape;
  std::vector<int64_t> target_shape;
};

struct MatchReport {
  std::vector<MatchedPair> matched;          // in target order
  std::vector<std::string> missing_keys;     // target names, target order
  std::vector<std::string> unexpected_keys;  // names after the rules, source order
  std::vector<ShapeMismatch> mismatched;     // target order
  std::vector<Rule> inferred_rules;          // what `auto` added, in order
  uint64_t bytes = 0;                        // sum over `matched`
  // Why the load would fail under the options, worded as PyTorch words its
  // RuntimeError; empty when it would succeed.
  std::vector<std::string> errors;

  bool ok() const { return errors.empty(); }
};

// Plans loading `source` into `target`. `source` and `target` are in state
// dict order; names must be unique within each.
//
// Steps: include/exclude select sources by their original names; the rules
// rewrite each selected name in order; with `auto_prefix`, prefix rules from
// kAutoPrefixes are then added greedily while one strictly increases the
// number of target names matched (at most two rounds, so "module._orig_mod."
// and "strip module. + add backbone." are found; a candidate that makes two
// sources collide is skipped). Two architectures that share no names thus
// get no invented prefix.
//
// InvalidArgument: a bad rule set, duplicate names, a negative dimension, or
// two sources renamed onto the same name (naming both and the name).
// A failing load is not an error status: see MatchReport::errors.
absl::StatusOr<MatchReport> Match(absl::Span<const TensorEntry> source,
                                  absl::Span<const TensorEntry> target, const RuleSet& rules,
                                  const MatchOptions& options);

// The report as `weightctl match --json` prints it:
// {"ok": the load would succeed, "errors": why not (as the text report),
//  "matched": [{"source", "target", "shape", "source_dtype", "target_dtype"}],
//  "missing_keys", "unexpected_keys",
//  "mismatched": [{"key", "source_shape", "target_shape"}], "inferred_rules"
//  (textual form), "bytes"}. Names are not checked for UTF-8: dump with
// error_handler_t::replace, as nlohmann throws on invalid UTF-8 otherwise.
nlohmann::ordered_json MatchReportToJson(const MatchReport& report);

// The report's errors joined with "; ", cut to at most `max_bytes` (at a
// UTF-8 character boundary, with a note of what was left out). For the gRPC
// status of a failed Fetch: it travels in trailing metadata, which clients
// cap (gRPC C++ and Python at 8 KiB by default), and a strict load into a big
// model can list thousands of keys. The report sent before it lists them all.
std::string ErrorSummary(const MatchReport& report, size_t max_bytes);

}  // namespace weightd

#endif  // WEIGHTD_CORE_MATCH_MATCH_H_
