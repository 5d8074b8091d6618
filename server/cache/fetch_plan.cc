#include "server/cache/fetch_plan.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "server/cache/dtype_cast.h"

namespace weightd {
namespace {

template <typename T>
void Append(std::vector<T>* to, const std::vector<T>& from) {
  to->insert(to->end(), from.begin(), from.end());
}

}  // namespace

RuleSet MergeRuleSets(const RuleSet& first, const RuleSet& then) {
  RuleSet out = first;
  Append(&out.rules, then.rules);
  Append(&out.include, then.include);
  Append(&out.exclude, then.exclude);
  Append(&out.ignore_missing, then.ignore_missing);
  Append(&out.ignore_unexpected, then.ignore_unexpected);
  out.auto_prefix = first.auto_prefix || then.auto_prefix;
  return out;
}

absl::StatusOr<MatchReport> MatchView(const StateDictView& view,
                                      absl::Span<const TensorEntry> target, const RuleSet& rules,
                                      const MatchOptions& options) {
  return Match(view.entries(), target, rules, options);
}

absl::StatusOr<FetchPlan> PlanFetch(const StateDictView& view, const FetchSpec& spec) {
  FetchPlan plan;
  if (!spec.target.empty()) {
    if (!spec.keys.empty()) {
      return absl::InvalidArgumentError("give either keys or a target, not both");
    }
    WEIGHTD_ASSIGN_OR_RETURN(plan.report, MatchView(view, spec.target, spec.rules, spec.options));
  } else {
    // Plain mode is the engine's match of the chosen sources onto themselves,
    // so both modes stream one kind of report.
    std::vector<TensorEntry> keyed;
    if (!spec.keys.empty()) {
      absl::flat_hash_set<std::string> seen;
      for (const std::string& key : spec.keys) {
        int index = view.Find(key);
        if (index < 0) {
          return absl::NotFoundError(absl::StrCat("no tensor \"", key, "\" in the state dict"));
        }
        if (seen.insert(key).second) keyed.push_back(view.entries()[index]);
      }
    }
    absl::Span<const TensorEntry> chosen =
        spec.keys.empty() ? absl::MakeConstSpan(view.entries()) : absl::MakeConstSpan(keyed);
    MatchOptions plain;
    plain.allow_empty = true;  // an empty state dict (or key list) fetches nothing, fine
    WEIGHTD_ASSIGN_OR_RETURN(plan.report, Match(chosen, chosen, RuleSet(), plain));
  }
  plan.tensors.reserve(plan.report.matched.size());
  const StateDict& tensors = view.tensors();
  for (size_t i = 0; i < plan.report.matched.size(); ++i) {
    const MatchedPair& pair = plan.report.matched[i];
    PlannedTensor& t = plan.tensors.emplace_back();
    t.name = pair.target;
    t.source = pair.source;
    // A whole-view fetch matches tensor i to itself; else look it up.
    t.index = i < tensors.size() && tensors[i].first == pair.source
                  ? static_cast<int>(i)
                  : view.Find(pair.source);
    if (t.index < 0) {
      return absl::InternalError(absl::StrCat("matched source \"", pair.source, "\" not found"));
    }
    const TensorRecord& record = view.tensors()[t.index].second;
    t.send_dtype = spec.cast.value_or(record.dtype);
    WEIGHTD_RETURN_IF_ERROR(CheckCast(record.dtype, t.send_dtype));
    t.send_bytes = static_cast<uint64_t>(record.numel()) * DTypeSize(t.send_dtype);
  }
  if (spec.cast.has_value()) {
    // The report counts the bytes the stream carries, as the headers do.
    uint64_t sent = 0;
    for (size_t i = 0; i < plan.tensors.size(); ++i) {
      plan.report.matched[i].bytes = plan.tensors[i].send_bytes;
      sent += plan.tensors[i].send_bytes;
    }
    plan.report.bytes = sent;
  }
  return plan;
}

}  // namespace weightd
