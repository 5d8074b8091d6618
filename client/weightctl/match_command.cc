// weightctl match SOURCE TARGET: would SOURCE's weights load into the module
// whose state dict TARGET holds, under the given rules? The same engine as
// the server's Match (core/match). With one positional (a model name) and
// --target FILE, the same question goes to a server (remote_commands.cc).
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/weightctl/commands.h"
#include "client/weightctl/match_flags.h"
#include "core/match/match.h"

namespace weightd::cli {
namespace {

int RunMatch(const ParsedArgs& args) {
  if (args.positional.size() == 1) {
#ifdef WEIGHTD_WEIGHTCTL_REMOTE
    return RunRemoteMatch(args);
#else
    return Fail("this weightctl was built without the client library (no remote match)", 2);
#endif
  }
  if (args.Has("server")) return Fail("--server takes one positional, the model", 2);
  absl::StatusOr<MatchOptions> options = MatchOptionsFromFlags(args);
  if (!options.ok()) return Fail(options.status().message(), 2);
  absl::StatusOr<RuleSet> rules = RulesFromFlags(args);
  if (!rules.ok()) return Fail(rules.status().message(), 2);

  absl::StatusOr<std::vector<TensorEntry>> source =
      ReadEntries(args.positional[0], args.Get("select").value_or(""));
  if (!source.ok()) return Fail(source.status().message());
  absl::StatusOr<std::vector<TensorEntry>> target =
      ReadEntries(args.positional[1], args.Get("target-select").value_or(""), "target-select");
  if (!target.ok()) return Fail(target.status().message());

  absl::StatusOr<MatchReport> report = Match(*source, *target, *rules, *options);
  // InvalidArgument here means the rules map two sources onto one name.
  if (!report.ok()) {
    return Fail(report.status().message(),
                report.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1);
  }
  return PrintMatchReport(*report, args.Has("json"));
}

}  // namespace

Command MatchCommand() {
  Command c;
  c.name = "match";
  c.usage =
      "match SOURCE TARGET | MODEL --target FILE [--server HOST:PORT] [credentials] "
      "[--select PATH] "
      "[--target-select PATH] [--strip-prefix P]... "
      "[--add-prefix P]... [--rename PATTERN=REPLACEMENT]... [--include RE]... "
      "[--exclude RE]... [--ignore RE]... [--auto] [--on-mismatch error|skip] [--strict | --no-strict] "
      "[--allow-empty] [--json]";
  c.summary =
      "Reports how SOURCE's tensors (or a served MODEL's) would load into the module whose state "
      "dict TARGET (FILE) holds, as load_state_dict would: matched, missing, unexpected and "
      "size-mismatched keys. Strict by default, as load_state_dict. Rules apply in "
      "command-line order. Exit 0 if the load would succeed, 1 if not.";
  c.flags = {
      {"select", true, "PATH  state dict inside SOURCE or MODEL (default: automatic)"},
      {"target-select", true, "PATH  state dict inside TARGET (default: automatic)"},
      {"target", true, "FILE  the target state dict, when matching a served MODEL"},
      {"server", true,
       "HOST:PORT  the weightd server for MODEL (default: $WEIGHTD_TARGET, else "
       "localhost:50051)"},
      {"version", true, "N  version of MODEL (default: newest)"},
  };
#ifdef WEIGHTD_WEIGHTCTL_REMOTE
  for (FlagSpec& f : CredentialFlagSpecs()) c.flags.push_back(std::move(f));
#endif
  for (FlagSpec& f : RuleFlagSpecs()) c.flags.push_back(std::move(f));
  for (FlagSpec& f : MatchOptionFlagSpecs()) c.flags.push_back(std::move(f));
  c.flags.push_back({"json", false,
                     "prints one JSON object: matched, missing_keys, unexpected_keys, mismatched, "
                     "inferred_rules, bytes"});
  c.min_positional = 1;
  c.max_positional = 2;
  c.run = RunMatch;
  return c;
}

}  // namespace weightd::cli
