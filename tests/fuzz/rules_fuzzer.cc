// Fuzzes the rule parser and the matching engine. Input: rule items, one per
// line, up to the first empty line; then tensor names, one per line, those
// starting with '+' being target names (without the '+'), the others source
// names. Checks that a parsed rule set formats back to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/match/match.h"
#include "core/match/rules.h"

namespace {

bool SameRuleSet(const weightd::RuleSet& a, const weightd::RuleSet& b) {
  return a.rules == b.rules && a.include == b.include && a.exclude == b.exclude &&
         a.ignore_missing == b.ignore_missing && a.ignore_unexpected == b.ignore_unexpected &&
         a.auto_prefix == b.auto_prefix;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;  // names and rules are short; keep runs fast
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> items;
  std::vector<weightd::TensorEntry> source, target;
  bool in_rules = true;
  for (absl::string_view line : absl::StrSplit(input, '\n')) {
    if (in_rules) {
      if (line.empty()) {
        in_rules = false;
      } else {
        items.emplace_back(line);
      }
      continue;
    }
    // Shapes vary with the name so that some pairs mismatch.
    weightd::TensorEntry entry{
        std::string(line), weightd::DType::kFloat32, {static_cast<int64_t>(line.size() % 3)}};
    if (!line.empty() && line[0] == '+') {
      entry.name.erase(0, 1);
      target.push_back(std::move(entry));
    } else {
      source.push_back(std::move(entry));
    }
  }

  absl::StatusOr<weightd::RuleSet> rules = weightd::ParseRuleSet(items);
  if (!rules.ok()) return 0;
  absl::StatusOr<weightd::RuleSet> again = weightd::ParseRuleSet(weightd::FormatRuleSet(*rules));
  if (!again.ok() || !SameRuleSet(*rules, *again)) std::abort();

  for (auto policy : {weightd::ShapePolicy::kError, weightd::ShapePolicy::kSkip}) {
    absl::StatusOr<weightd::MatchReport> report =
        weightd::Match(source, target, *rules, weightd::MatchOptions{policy, true});
    if (!report.ok()) continue;
    // Every target is accounted for exactly once: matched, missing (or
    // ignored), or mismatched (and missing again under skip).
    if (report->matched.size() > target.size() || report->missing_keys.size() > target.size()) {
      std::abort();
    }
    weightd::MatchReportToJson(*report).dump(-1, ' ', false,
                                             nlohmann::ordered_json::error_handler_t::replace);
  }
  return 0;
}
