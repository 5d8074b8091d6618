#include "core/match/rules.h"

#include <ostream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/util/status_macros.h"
#include "re2/re2.h"

namespace weightd {
namespace {

constexpr absl::string_view kStripPrefix = "strip_prefix";
constexpr absl::string_view kAddPrefix = "add_prefix";
constexpr absl::string_view kRegex = "regex";
constexpr absl::string_view kRename = "rename";
constexpr absl::string_view kInclude = "include";
constexpr absl::string_view kExclude = "exclude";
constexpr absl::string_view kIgnore = "ignore";
constexpr absl::string_view kIgnoreMissing = "ignore_missing";
constexpr absl::string_view kIgnoreUnexpected = "ignore_unexpected";
constexpr absl::string_view kAuto = "auto";

re2::StringPiece Piece(absl::string_view s) { return re2::StringPiece(s.data(), s.size()); }

// Compiles `pattern` under the memory limit. `what` says where it came from
// ("regex rule", "include pattern") for the message.
absl::StatusOr<std::unique_ptr<re2::RE2>> CompilePattern(absl::string_view pattern,
                                                         absl::string_view what) {
  if (pattern.size() > kMaxPatternLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", pattern.size(), " bytes long; the limit is ", kMaxPatternLength));
  }
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(kMaxRegexMemory);
  auto re = std::make_unique<re2::RE2>(Piece(pattern), options);
  if (!re->ok()) {
    if (re->error_code() == re2::RE2::ErrorPatternTooLarge) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", pattern, "' is too complex: its compiled program exceeds ",
                       kMaxRegexMemory, " bytes (RE2: ", re->error(), ")"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("bad ", what, " '", pattern, "': ", re->error()));
  }
  return re;
}

absl::Status CompileAll(const std::vector<std::string>& patterns, absl::string_view what,
                        std::vector<std::unique_ptr<re2::RE2>>* out) {
  for (const std::string& pattern : patterns) {
    WEIGHTD_ASSIGN_OR_RETURN(std::unique_ptr<re2::RE2> re, CompilePattern(pattern, what));
    out->push_back(std::move(re));
  }
  return absl::OkStatus();
}

bool AnyPartialMatch(const std::vector<std::unique_ptr<re2::RE2>>& regexes,
                     absl::string_view name) {
  for (const auto& re : regexes) {
    if (re2::RE2::PartialMatch(Piece(name), *re)) return true;
  }
  return false;
}

// Splits "pattern=replacement" at the first '=' not escaped by a backslash.
// "\=" in the pattern becomes '=' (the same regex), so that FormatRule, which
// escapes '=', round-trips; other escapes are left for RE2.
bool SplitRegexItem(absl::string_view arg, std::string* pattern, std::string* replacement) {
  pattern->clear();
  for (size_t i = 0; i < arg.size(); ++i) {
    if (arg[i] == '\\' && i + 1 < arg.size()) {
      if (arg[i + 1] != '=') *pattern += arg[i];
      *pattern += arg[++i];
    } else if (arg[i] == '=') {
      *replacement = std::string(arg.substr(i + 1));
      return true;
    } else {
      *pattern += arg[i];
    }
  }
  return false;
}

}  // namespace

void PrintTo(const Rule& rule, std::ostream* os) { *os << FormatRule(rule); }

Rule StripPrefix(std::string prefix) {
  return Rule{Rule::Kind::kStripPrefix, std::move(prefix), ""};
}
Rule AddPrefix(std::string prefix) { return Rule{Rule::Kind::kAddPrefix, std::move(prefix), ""}; }
Rule RegexRule(std::string pattern, std::string replacement) {
  return Rule{Rule::Kind::kRegex, std::move(pattern), std::move(replacement)};
}
Rule Rename(std::string old_name, std::string new_name) {
  return Rule{Rule::Kind::kRename, std::move(old_name), std::move(new_name)};
}

absl::Status ParseRuleItem(absl::string_view item, RuleSet* rule_set) {
  if (item == kAuto) {
    rule_set->auto_prefix = true;
    return absl::OkStatus();
  }
  size_t colon = item.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rule '", item,
        "' has no kind; expected strip_prefix:P, add_prefix:P, regex:PATTERN=REPLACEMENT, "
        "rename:OLD=NEW, include:RE, exclude:RE, ignore:RE, ignore_missing:RE, "
        "ignore_unexpected:RE or auto"));
  }
  absl::string_view kind = item.substr(0, colon);
  absl::string_view arg = item.substr(colon + 1);
  if (arg.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("rule '", item, "' has an empty argument"));
  }
  if (kind == kStripPrefix) {
    rule_set->rules.push_back(StripPrefix(std::string(arg)));
  } else if (kind == kAddPrefix) {
    rule_set->rules.push_back(AddPrefix(std::string(arg)));
  } else if (kind == kRegex) {
    std::string pattern, replacement;
    if (!SplitRegexItem(arg, &pattern, &replacement) || pattern.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "regex rule '", item, "' is not PATTERN=REPLACEMENT (write \\= for a literal '=')"));
    }
    rule_set->rules.push_back(RegexRule(std::move(pattern), std::move(replacement)));
  } else if (kind == kRename) {
    size_t eq = arg.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("rename rule '", item, "' is not OLD=NEW"));
    }
    rule_set->rules.push_back(
        Rename(std::string(arg.substr(0, eq)), std::string(arg.substr(eq + 1))));
  } else if (kind == kInclude) {
    rule_set->include.emplace_back(arg);
  } else if (kind == kExclude) {
    rule_set->exclude.emplace_back(arg);
  } else if (kind == kIgnore) {
    rule_set->ignore_missing.emplace_back(arg);
    rule_set->ignore_unexpected.emplace_back(arg);
  } else if (kind == kIgnoreMissing) {
    rule_set->ignore_missing.emplace_back(arg);
  } else if (kind == kIgnoreUnexpected) {
    rule_set->ignore_unexpected.emplace_back(arg);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("rule '", item, "' has unknown kind '", kind, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RuleSet> ParseRuleSet(absl::Span<const std::string> items) {
  if (items.size() > kMaxRuleItems) {
    return absl::InvalidArgumentError(
        absl::StrCat(items.size(), " rules given; the limit is ", kMaxRuleItems));
  }
  RuleSet rule_set;
  for (const std::string& item : items) {
    WEIGHTD_RETURN_IF_ERROR(ParseRuleItem(item, &rule_set));
  }
  WEIGHTD_RETURN_IF_ERROR(ValidateRuleSet(rule_set));
  return rule_set;
}

std::string FormatRule(const Rule& rule) {
  switch (rule.kind) {
    case Rule::Kind::kStripPrefix:
      return absl::StrCat(kStripPrefix, ":", rule.pattern);
    case Rule::Kind::kAddPrefix:
      return absl::StrCat(kAddPrefix, ":", rule.pattern);
    case Rule::Kind::kRegex: {
      // Escape unescaped '=' so the item splits where this pattern ends.
      std::string pattern;
      for (size_t i = 0; i < rule.pattern.size(); ++i) {
        char c = rule.pattern[i];
        if (c == '\\' && i + 1 < rule.pattern.size()) {
          pattern += c;
          pattern += rule.pattern[++i];
        } else {
          if (c == '=') pattern += '\\';
          pattern += c;
        }
      }
      return absl::StrCat(kRegex, ":", pattern, "=", rule.replacement);
    }
    case Rule::Kind::kRename:
      return absl::StrCat(kRename, ":", rule.pattern, "=", rule.replacement);
  }
  return "";
}

std::vector<std::string> FormatRuleSet(const RuleSet& rule_set) {
  std::vector<std::string> items;
  for (const Rule& rule : rule_set.rules) items.push_back(FormatRule(rule));
  for (const auto& p : rule_set.include) items.push_back(absl::StrCat(kInclude, ":", p));
  for (const auto& p : rule_set.exclude) items.push_back(absl::StrCat(kExclude, ":", p));
  for (const auto& p : rule_set.ignore_missing) {
    items.push_back(absl::StrCat(kIgnoreMissing, ":", p));
  }
  for (const auto& p : rule_set.ignore_unexpected) {
    items.push_back(absl::StrCat(kIgnoreUnexpected, ":", p));
  }
  if (rule_set.auto_prefix) items.emplace_back(kAuto);
  return items;
}

absl::Status ValidateRuleSet(const RuleSet& rule_set) {
  return CompiledRuleSet::Compile(rule_set).status();
}

CompiledRuleSet::CompiledRuleSet(CompiledRuleSet&&) noexcept = default;
CompiledRuleSet& CompiledRuleSet::operator=(CompiledRuleSet&&) noexcept = default;
CompiledRuleSet::~CompiledRuleSet() = default;

absl::StatusOr<CompiledRuleSet> CompiledRuleSet::Compile(const RuleSet& rule_set) {
  size_t items = rule_set.rules.size() + rule_set.include.size() + rule_set.exclude.size() +
                 rule_set.ignore_missing.size() + rule_set.ignore_unexpected.size();
  if (items > kMaxRuleItems) {
    return absl::InvalidArgumentError(
        absl::StrCat(items, " rules and patterns given; the limit is ", kMaxRuleItems));
  }
  CompiledRuleSet compiled;
  compiled.rule_set_ = rule_set;
  for (const Rule& rule : rule_set.rules) {
    if (rule.kind != Rule::Kind::kRegex) {
      if (rule.pattern.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("rule '", FormatRule(rule), "' has an empty argument"));
      }
      if (rule.pattern.size() > kMaxNameLength || rule.replacement.size() > kMaxNameLength) {
        return absl::InvalidArgumentError(
            absl::StrCat("rule argument is longer than ", kMaxNameLength, " bytes"));
      }
      compiled.rule_regexes_.push_back(nullptr);
      continue;
    }
    WEIGHTD_ASSIGN_OR_RETURN(std::unique_ptr<re2::RE2> re,
                             CompilePattern(rule.pattern, "regex rule"));
    if (rule.replacement.size() > kMaxReplacementLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          "replacement of regex rule '", rule.pattern, "' is ", rule.replacement.size(),
          " bytes long; the limit is ", kMaxReplacementLength));
    }
    std::string error;
    if (!re->CheckRewriteString(Piece(rule.replacement), &error)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad replacement '", rule.replacement, "' for regex rule '", rule.pattern, "': ", error));
    }
    compiled.rule_regexes_.push_back(std::move(re));
  }
  WEIGHTD_RETURN_IF_ERROR(CompileAll(rule_set.include, "include pattern", &compiled.include_));
  WEIGHTD_RETURN_IF_ERROR(CompileAll(rule_set.exclude, "exclude pattern", &compiled.exclude_));
  WEIGHTD_RETURN_IF_ERROR(
      CompileAll(rule_set.ignore_missing, "ignore pattern", &compiled.ignore_missing_));
  WEIGHTD_RETURN_IF_ERROR(
      CompileAll(rule_set.ignore_unexpected, "ignore pattern", &compiled.ignore_unexpected_));
  return compiled;
}

bool CompiledRuleSet::Selects(absl::string_view source_name) const {
  if (!include_.empty() && !AnyPartialMatch(include_, source_name)) return false;
  return !AnyPartialMatch(exclude_, source_name);
}

bool CompiledRuleSet::IgnoresMissing(absl::string_view target_name) const {
  return AnyPartialMatch(ignore_missing_, target_name);
}

bool CompiledRuleSet::IgnoresUnexpected(absl::string_view name) const {
  return AnyPartialMatch(ignore_unexpected_, name);
}

std::string ApplyLiteralRule(const Rule& rule, absl::string_view name) {
  switch (rule.kind) {
    case Rule::Kind::kStripPrefix:
      if (absl::StartsWith(name, rule.pattern)) name.remove_prefix(rule.pattern.size());
      return std::string(name);
    case Rule::Kind::kAddPrefix:
      return absl::StrCat(rule.pattern, name);
    case Rule::Kind::kRename:
      return name == rule.pattern ? rule.replacement : std::string(name);
    case Rule::Kind::kRegex:
      break;  // needs the compiled regex
  }
  return std::string(name);
}

absl::StatusOr<std::string> CompiledRuleSet::Apply(absl::string_view source_name) const {
  std::string name(source_name);
  for (size_t i = 0; i < rule_set_.rules.size(); ++i) {
    const Rule& rule = rule_set_.rules[i];
    if (rule.kind == Rule::Kind::kRegex) {
      // Every non-overlapping match, like Python's re.sub.
      re2::RE2::GlobalReplace(&name, *rule_regexes_[i], Piece(rule.replacement));
    } else {
      name = ApplyLiteralRule(rule, name);
    }
    if (name.size() > kMaxNameLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("rule '", FormatRule(rule), "' makes the name of '",
                       source_name.substr(0, 200), "' longer than ", kMaxNameLength, " bytes"));
    }
  }
  return name;
}

}  // namespace weightd
