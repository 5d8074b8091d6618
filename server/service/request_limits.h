// Per-request limits checked before any work is done (issue 6). Counts only;
// the regex program size is bounded where patterns compile (core/match,
// RE2 max_mem), so every RE2 a request makes is bounded too.
#ifndef WEIGHTD_SERVER_SERVICE_REQUEST_LIMITS_H_
#define WEIGHTD_SERVER_SERVICE_REQUEST_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "weightd/v1/weightd.pb.h"

namespace weightd {

struct RequestLimits {
  // Target tensors (MatchRequest/FetchRequest.target) plus FetchRequest.keys.
  // 0: unlimited.
  uint32_t max_target_entries = 200000;
  // Rules plus include/exclude/ignore patterns of one RuleSet. 0: unlimited.
  uint32_t max_rules = 1000;
  // Bytes of one pattern or rule string. 0: unlimited.
  uint32_t max_pattern_bytes = 4096;
};

// InvalidArgument naming the field, the count and the limit.
absl::Status CheckMatchRequest(const v1::MatchRequest& request, const RequestLimits& limits);
absl::Status CheckFetchRequest(const v1::FetchRequest& request, const RequestLimits& limits);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_REQUEST_LIMITS_H_
