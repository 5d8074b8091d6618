// What a Match or Fetch request resolves to, computed with the matching
// engine (core/match) over a snapshot's state dict. No gRPC here: the
// service translates its protos into these structs and back.
#ifndef WEIGHTD_SERVER_CACHE_FETCH_PLAN_H_
#define WEIGHTD_SERVER_CACHE_FETCH_PLAN_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/match/match.h"
#include "server/cache/snapshot.h"

namespace weightd {

struct FetchSpec {
  // Plain mode: these source names (all tensors when empty and no target),
  // sent under their own names. The rules do not apply.
  std::vector<std::string> keys;
  // Match mode (when `target` is not empty): the engine's pairs, sent under
  // their target names.
  std::vector<TensorEntry> target;
  RuleSet rules;
  MatchOptions options;
  std::optional<DType> cast;  // dtype to send; unset: as stored
};

struct PlannedTensor {
  std::string name;    // sent name (target name in match mode)
  std::string source;  // name in the checkpoint
  int index = 0;       // in the view's tensors()
  DType send_dtype = DType::kFloat32;
  uint64_t send_bytes = 0;
};

struct FetchPlan {
  MatchReport report;
  std::vector<PlannedTensor> tensors;  // in report order
};

// The model config's rules first, then the request's (DESIGN.md section 5).
RuleSet MergeRuleSets(const RuleSet& first, const RuleSet& then);

// The engine's report for loading `view` into `target`.
absl::StatusOr<MatchReport> MatchView(const StateDictView& view,
                                      absl::Span<const TensorEntry> target, const RuleSet& rules,
                                      const MatchOptions& options);

// NotFound for an unknown key (naming it); InvalidArgument for a bad rule
// set or request; Unimplemented for an unsupported cast. A plan whose report
// is not ok() is returned as such: the caller decides.
absl::StatusOr<FetchPlan> PlanFetch(const StateDictView& view, const FetchSpec& spec);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_CACHE_FETCH_PLAN_H_
