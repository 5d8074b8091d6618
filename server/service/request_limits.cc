#include "server/service/request_limits.h"

#include "absl/strings/str_cat.h"

namespace weightd {
namespace {

absl::Status CheckCount(const char* what, uint64_t count, uint32_t limit) {
  if (limit != 0 && count > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", count, " entries exceed this server's limit of ", limit, " per request"));
  }
  return absl::OkStatus();
}

absl::Status CheckString(const char* what, const std::string& value, uint32_t limit) {
  if (limit != 0 && value.size() > limit) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": a pattern of ", value.size(),
                                                   " bytes exceeds this server's limit of ", limit,
                                                   " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CheckRules(const v1::RuleSet& rules, const RequestLimits& limits) {
  const uint64_t count = rules.rules_size() + rules.include_size() + rules.exclude_size() +
                         rules.ignore_missing_size() + rules.ignore_unexpected_size();
  absl::Status status = CheckCount("rules", count, limits.max_rules);
  if (!status.ok()) return status;
  for (const v1::Rule& rule : rules.rules()) {
    for (const std::string* s :
         {&rule.strip_prefix(), &rule.add_prefix(), &rule.regex().pattern(),
          &rule.regex().replacement(), &rule.rename().from(), &rule.rename().to()}) {
      status = CheckString("rules", *s, limits.max_pattern_bytes);
      if (!status.ok()) return status;
    }
  }
  for (const auto* list :
       {&rules.include(), &rules.exclude(), &rules.ignore_missing(), &rules.ignore_unexpected()}) {
    for (const std::string& pattern : *list) {
      status = CheckString("rules", pattern, limits.max_pattern_bytes);
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckMatchRequest(const v1::MatchRequest& request, const RequestLimits& limits) {
  absl::Status status = CheckCount("target", request.target_size(), limits.max_target_entries);
  if (!status.ok()) return status;
  return CheckRules(request.rules(), limits);
}

absl::Status CheckFetchRequest(const v1::FetchRequest& request, const RequestLimits& limits) {
  absl::Status status = CheckCount(
      "target and keys", static_cast<uint64_t>(request.target_size()) + request.keys_size(),
      limits.max_target_entries);
  if (!status.ok()) return status;
  return CheckRules(request.rules(), limits);
}

}  // namespace weightd
