// weightctl match SOURCE TARGET: would SOURCE's weights load into the module
// whose state dict TARGET holds, under the given rules? The same engine as
// the server's Match (core/match).
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/weightctl/commands.h"
#include "core/checkpoint/select.h"
#include "core/format/checkpoint_io.h"
#include "core/match/match.h"

namespace weightd::cli {
namespace {

using Json = nlohmann::ordered_json;

// Reads `path` and describes the state dict selected in it.
absl::StatusOr<std::vector<TensorEntry>> ReadEntries(const std::string& path,
                                                     const std::string& select) {
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(path);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<Selection> selection = SelectStateDict(*checkpoint, select);
  if (!selection.ok()) {
    return absl::Status(selection.status().code(),
                        absl::StrCat(path, ": ", selection.status().message()));
  }
  return EntriesFromStateDict(selection->tensors);
}

// The rule flags, in command-line order, as textual rule items: the flags
// are only another spelling of the one rule syntax (core/match/rules.h).
absl::StatusOr<RuleSet> RulesFromFlags(const ParsedArgs& args) {
  std::vector<std::string> items;
  for (const auto& [flag, value] : args.flags) {
    if (flag == "strip-prefix") {
      items.push_back(absl::StrCat("strip_prefix:", value));
    } else if (flag == "add-prefix") {
      items.push_back(absl::StrCat("add_prefix:", value));
    } else if (flag == "rename") {
      items.push_back(absl::StrCat("regex:", value));
    } else if (flag == "include" || flag == "exclude" || flag == "ignore") {
      items.push_back(absl::StrCat(flag, ":", value));
    } else if (flag == "auto") {
      items.push_back("auto");
    }
  }
  return ParseRuleSet(items);
}

void PrintKeys(absl::string_view title, const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  std::cout << "\n" << title << " (" << keys.size() << "):\n";
  for (const std::string& key : keys) std::cout << "  " << key << "\n";
}

void PrintReport(const MatchReport& report) {
  std::map<std::string, int> conversions;
  for (const MatchedPair& m : report.matched) {
    if (m.source_dtype != m.target_dtype) {
      ++conversions[absl::StrCat(DTypeName(m.source_dtype), " -> ", DTypeName(m.target_dtype))];
    }
  }
  std::cout << "matched: " << report.matched.size() << " tensors, " << report.bytes << " bytes\n";
  for (const Rule& rule : report.inferred_rules) {
    std::cout << "inferred rule: " << FormatRule(rule) << "\n";
  }
  for (const auto& [what, count] : conversions) {
    std::cout << "converted: " << count << " tensors " << what << "\n";
  }
  PrintKeys("missing keys", report.missing_keys);
  PrintKeys("unexpected keys", report.unexpected_keys);
  if (!report.mismatched.empty()) {
    std::cout << "\nsize mismatches (" << report.mismatched.size() << "):\n";
    for (const ShapeMismatch& m : report.mismatched) {
      std::cout << "  " << m.key << ": source " << ShapeToString(m.source_shape)
                << (m.source != m.key ? absl::StrCat(" (", m.source, ")") : "") << ", target "
                << ShapeToString(m.target_shape) << "\n";
    }
  }
  std::cout << "\n" << (report.ok() ? "load would succeed" : "load would FAIL:") << "\n";
  for (const std::string& error : report.errors) std::cout << "  " << error << "\n";
}

int RunMatch(const ParsedArgs& args) {
  const std::string on_mismatch = args.Get("on-mismatch").value_or("error");
  MatchOptions options;
  if (on_mismatch == "skip") {
    options.on_shape_mismatch = ShapePolicy::kSkip;
  } else if (on_mismatch != "error") {
    return Fail(absl::StrCat("--on-mismatch must be error or skip, not \"", on_mismatch, "\""), 2);
  }
  options.strict = args.Has("strict");
  absl::StatusOr<RuleSet> rules = RulesFromFlags(args);
  if (!rules.ok()) return Fail(rules.status().message(), 2);

  absl::StatusOr<std::vector<TensorEntry>> source =
      ReadEntries(args.positional[0], args.Get("select").value_or(""));
  if (!source.ok()) return Fail(source.status().message());
  absl::StatusOr<std::vector<TensorEntry>> target =
      ReadEntries(args.positional[1], args.Get("target-select").value_or(""));
  if (!target.ok()) return Fail(target.status().message());

  absl::StatusOr<MatchReport> report = Match(*source, *target, *rules, options);
  // InvalidArgument here means the rules map two sources onto one name.
  if (!report.ok()) {
    return Fail(report.status().message(),
                report.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1);
  }
  if (args.Has("json")) {
    std::cout << MatchReportToJson(*report).dump(-1, ' ', false, Json::error_handler_t::replace)
              << std::endl;
    if (!report->ok()) Fail(absl::StrJoin(report->errors, " "));
  } else {
    PrintReport(*report);
  }
  return report->ok() ? 0 : 1;
}

}  // namespace

Command MatchCommand() {
  Command c;
  c.name = "match";
  c.usage =
      "match SOURCE TARGET [--select PATH] [--target-select PATH] [--strip-prefix P]... "
      "[--add-prefix P]... [--rename PATTERN=REPLACEMENT]... [--include RE]... "
      "[--exclude RE]... [--ignore RE]... [--auto] [--on-mismatch error|skip] [--strict] "
      "[--json]";
  c.summary =
      "Reports how SOURCE's tensors would load into the module whose state dict TARGET holds, "
      "as load_state_dict would: matched, missing, unexpected and size-mismatched keys. "
      "Rules apply in command-line order. Exit 0 if the load would succeed, 1 if not.";
  c.flags = {
      {"select", true, "PATH  state dict inside SOURCE (default: automatic)"},
      {"target-select", true, "PATH  state dict inside TARGET (default: automatic)"},
      {"strip-prefix", true, "P  removes a leading P from source names"},
      {"add-prefix", true, "P  prepends P to source names"},
      {"rename", true,
       "PATTERN=REPLACEMENT  RE2 regex replace on source names, every match (re.sub); "
       "\\1 names a group; the first '=' not escaped as \\= splits"},
      {"include", true, "RE  keeps only source names matching RE (before the rules)"},
      {"exclude", true, "RE  drops source names matching RE (before the rules)"},
      {"ignore", true, "RE  leaves matching keys out of the missing and unexpected lists"},
      {"auto", false,
       "infers prefix differences (module., _orig_mod., model., backbone., "
       "encoder.; strip or add) after the rules"},
      {"on-mismatch", true,
       "error|skip  a size mismatch fails the load (default, as PyTorch) "
       "or the key is skipped (and reported missing)"},
      {"strict", false, "fails when missing or unexpected keys remain"},
      {"json", false,
       "prints one JSON object: matched, missing_keys, unexpected_keys, mismatched, "
       "inferred_rules, bytes"},
  };
  c.min_positional = c.max_positional = 2;
  c.run = RunMatch;
  return c;
}

}  // namespace weightd::cli
