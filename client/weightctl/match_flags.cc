#include "client/weightctl/match_flags.h"

#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "core/checkpoint/select.h"
#include "core/format/checkpoint_io.h"

namespace weightd::cli {
namespace {

using Json = nlohmann::ordered_json;

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

}  // namespace

std::vector<FlagSpec> MatchOptionFlagSpecs() {
  return {
      {"on-mismatch", true,
       "error|skip  a size mismatch fails the load (default, as PyTorch) or the key is "
       "skipped: it keeps its initial value and fails nothing"},
      {"strict", false,
       "missing or unexpected keys fail the load (default, as load_state_dict(strict=True))"},
      {"no-strict", false, "missing and unexpected keys are reported only (strict=False)"},
      {"allow-empty", false, "a match that pairs no tensor is not a failure"},
  };
}

std::vector<FlagSpec> RuleFlagSpecs(bool with_auto) {
  std::vector<FlagSpec> specs = {
      {"strip-prefix", true, "P  removes a leading P from source names"},
      {"add-prefix", true, "P  prepends P to source names"},
      {"rename", true,
       "PATTERN=REPLACEMENT  RE2 regex replace on source names, every match (re.sub); "
       "\\1 names a group; the first '=' not escaped as \\= splits"},
      {"include", true, "RE  keeps only source names matching RE (before the rules)"},
      {"exclude", true, "RE  drops source names matching RE (before the rules)"},
  };
  if (with_auto) {
    specs.push_back(
        {"ignore", true, "RE  leaves matching keys out of the missing and unexpected lists"});
    specs.push_back({"auto", false,
                     "infers prefix differences (module., _orig_mod., model., backbone., "
                     "encoder.; strip or add) after the rules"});
  }
  return specs;
}

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

absl::StatusOr<MatchOptions> MatchOptionsFromFlags(const ParsedArgs& args) {
  const std::string on_mismatch = args.Get("on-mismatch").value_or("error");
  MatchOptions options;
  if (on_mismatch == "skip") {
    options.on_shape_mismatch = ShapePolicy::kSkip;
  } else if (on_mismatch != "error") {
    return absl::InvalidArgumentError(
        absl::StrCat("--on-mismatch must be error or skip, not \"", on_mismatch, "\""));
  }
  // The last of --strict / --no-strict wins; strict is PyTorch's default.
  for (const auto& [flag, value] : args.flags) {
    if (flag == "strict") options.strict = true;
    if (flag == "no-strict") options.strict = false;
  }
  options.allow_empty = args.Has("allow-empty");
  return options;
}

absl::StatusOr<std::vector<TensorEntry>> ReadEntries(const std::string& path,
                                                     const std::string& select,
                                                     absl::string_view select_flag) {
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(path);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<Selection> selection = SelectStateDict(*checkpoint, select);
  if (!selection.ok()) {
    // The message starts with the path already; its hint names --select,
    // which for a target file is spelled otherwise.
    return absl::Status(selection.status().code(),
                        absl::StrReplaceAll(selection.status().message(),
                                            {{"--select", absl::StrCat("--", select_flag)}}));
  }
  return EntriesFromStateDict(selection->tensors);
}

int PrintMatchReport(const MatchReport& report, bool json) {
  if (json) {
    std::cout << MatchReportToJson(report).dump(-1, ' ', false, Json::error_handler_t::replace)
              << std::endl;
    if (!report.ok()) Fail(absl::StrJoin(report.errors, " "));
  } else {
    PrintReport(report);
  }
  return report.ok() ? 0 : 1;
}

}  // namespace weightd::cli
