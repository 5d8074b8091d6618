// What `weightctl match` (local and remote), `pull` and `load`-like commands
// share: the rule flags, the match options flags, reading a target file's
// entries and printing a match report.
#ifndef WEIGHTD_CLIENT_WEIGHTCTL_MATCH_FLAGS_H_
#define WEIGHTD_CLIENT_WEIGHTCTL_MATCH_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/weightctl/args.h"
#include "core/match/match.h"

namespace weightd::cli {

// --strip-prefix, --add-prefix, --rename, --include, --exclude, --ignore
// and, with `with_auto`, --auto.
std::vector<FlagSpec> RuleFlagSpecs(bool with_auto = true);

// The rule flags, in command-line order, as textual rule items: the flags
// are only another spelling of the one rule syntax (core/match/rules.h).
absl::StatusOr<RuleSet> RulesFromFlags(const ParsedArgs& args);

// --on-mismatch error|skip, --strict (default) / --no-strict (the last one
// given wins) and --allow-empty.
std::vector<FlagSpec> MatchOptionFlagSpecs();

// The flags of MatchOptionFlagSpecs. InvalidArgument for a bad value.
absl::StatusOr<MatchOptions> MatchOptionsFromFlags(const ParsedArgs& args);

// Reads `path` and describes the state dict selected in it; `select_flag`
// is the flag that gave `select`, which the error messages suggest.
absl::StatusOr<std::vector<TensorEntry>> ReadEntries(const std::string& path,
                                                     const std::string& select,
                                                     absl::string_view select_flag = "select");

// The report for people (stdout) or, with `json`, as one JSON line; returns
// the exit code: 0 when the load would succeed, else 1.
int PrintMatchReport(const MatchReport& report, bool json);

}  // namespace weightd::cli

#endif  // WEIGHTD_CLIENT_WEIGHTCTL_MATCH_FLAGS_H_
