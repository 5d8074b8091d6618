// Remap rules: how source tensor names are rewritten before they are matched
// against a target (DESIGN.md section 3).
//
// A RuleSet is one value with one textual form, parsed by ParseRuleSet, used
// by the weightctl flags, the per-model config and the API alike. Each item is
// `kind:argument`:
//
//   strip_prefix:module.            drop a leading "module." (names without it
//                                   are left as they are)
//   add_prefix:backbone.            prepend "backbone." to every name
//   regex:^layer(\d+)\.=stage\1.    RE2 pattern=replacement, replacing every
//                                   non-overlapping match (Python's re.sub, as
//                                   mmengine's revise_keys does); \1..\9 are
//                                   capture groups, \0 the whole match, \\ a
//                                   backslash. The first '=' not preceded by a
//                                   backslash ends the pattern; write \= for a
//                                   literal '=' in the pattern (it is stored
//                                   as '=', which RE2 reads the same).
//   rename:fc.weight=head.weight    exact rename (the first '=' splits)
//   include:RE                      keep only source names matching some
//                                   include pattern (RE2 partial match,
//                                   on names before any rule)
//   exclude:RE                      drop source names matching (same)
//   ignore:RE                       leave matching names out of both the
//                                   missing and the unexpected report
//   ignore_missing:RE               ... out of the missing report only
//   ignore_unexpected:RE            ... out of the unexpected report only
//   auto                            infer prefix differences (see match.h)
//
// Only the rewriting rules (the first four) are ordered; the position of the
// other items does not matter.
#ifndef WEIGHTD_CORE_MATCH_RULES_H_
#define WEIGHTD_CORE_MATCH_RULES_H_

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace weightd {

// One rewriting rule. Maps 1:1 onto a proto `Rule { oneof kind }`.
struct Rule {
  enum class Kind { kStripPrefix, kAddPrefix, kRegex, kRename };
  Kind kind = Kind::kStripPrefix;
  // The prefix, the regex pattern, or the exact old name.
  std::string pattern;
  // The regex replacement or the new name; empty for the prefix rules.
  std::string replacement;

  friend bool operator==(const Rule& a, const Rule& b) {
    return a.kind == b.kind && a.pattern == b.pattern && a.replacement == b.replacement;
  }
};

// Prints the textual form (test failure messages).
void PrintTo(const Rule& rule, std::ostream* os);

Rule StripPrefix(std::string prefix);
Rule AddPrefix(std::string prefix);
Rule RegexRule(std::string pattern, std::string replacement);
Rule Rename(std::string old_name, std::string new_name);

// Everything that decides how source names map onto target names. Maps 1:1
// onto a proto message with these fields.
struct RuleSet {
  std::vector<Rule> rules;  // applied in order to every source name
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::vector<std::string> ignore_missing;
  std::vector<std::string> ignore_unexpected;
  bool auto_prefix = false;
};

// Limits that keep a hostile rule set from using unbounded memory or time.
inline constexpr size_t kMaxPatternLength = 4096;
inline constexpr size_t kMaxReplacementLength = 1024;
inline constexpr int64_t kMaxRegexMemory = 2 << 20;  // RE2 max_mem, bytes
// A rule that makes a name longer than this is an error (a regex whose
// replacement repeats \0 would otherwise grow names exponentially).
inline constexpr size_t kMaxNameLength = 4096;
inline constexpr size_t kMaxRuleItems = 1024;

// Parses one textual item ("strip_prefix:module.") into `rule_set`.
// InvalidArgument on an unknown kind, a missing argument or a bad regex (the
// message quotes the item and RE2's error).
absl::Status ParseRuleItem(absl::string_view item, RuleSet* rule_set);

// Parses all items, in order, and validates the result (ValidateRuleSet).
absl::StatusOr<RuleSet> ParseRuleSet(absl::Span<const std::string> items);

// The textual form of one rule; ParseRuleItem(FormatRule(r)) gives back r.
std::string FormatRule(const Rule& rule);

// The textual items of a whole rule set: rewriting rules in order, then
// include, exclude, ignore_missing, ignore_unexpected and auto.
std::vector<std::string> FormatRuleSet(const RuleSet& rule_set);

// Checks every pattern compiles within the limits and every replacement only
// names capture groups its pattern has. InvalidArgument names the pattern.
absl::Status ValidateRuleSet(const RuleSet& rule_set);

// A RuleSet with its regexes compiled. Immutable once built; thread-safe.
class CompiledRuleSet {
 public:
  static absl::StatusOr<CompiledRuleSet> Compile(const RuleSet& rule_set);

  CompiledRuleSet(CompiledRuleSet&&) noexcept;
  CompiledRuleSet& operator=(CompiledRuleSet&&) noexcept;
  ~CompiledRuleSet();

  const RuleSet& rule_set() const { return rule_set_; }

  // Whether the include/exclude patterns keep `source_name`.
  bool Selects(absl::string_view source_name) const;
  // Applies the rewriting rules in order. InvalidArgument when a rule makes
  // the name longer than kMaxNameLength.
  absl::StatusOr<std::string> Apply(absl::string_view source_name) const;
  bool IgnoresMissing(absl::string_view target_name) const;
  bool IgnoresUnexpected(absl::string_view name) const;

 private:
  CompiledRuleSet() = default;

  RuleSet rule_set_;
  // One entry per rule; null for the non-regex rules.
  std::vector<std::unique_ptr<re2::RE2>> rule_regexes_;
  std::vector<std::unique_ptr<re2::RE2>> include_;
  std::vector<std::unique_ptr<re2::RE2>> exclude_;
  std::vector<std::unique_ptr<re2::RE2>> ignore_missing_;
  std::vector<std::unique_ptr<re2::RE2>> ignore_unexpected_;
};

// Applies one non-regex rule (strip/add prefix, exact rename) to `name`.
std::string ApplyLiteralRule(const Rule& rule, absl::string_view name);

}  // namespace weightd

#endif  // WEIGHTD_CORE_MATCH_RULES_H_
