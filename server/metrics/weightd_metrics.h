// The metric families weightd exports, declared in one place.
#ifndef WEIGHTD_SERVER_METRICS_WEIGHTD_METRICS_H_
#define WEIGHTD_SERVER_METRICS_WEIGHTD_METRICS_H_

#include "server/metrics/registry.h"

namespace weightd::metrics {

// {method="/weightd.v1.WeightService/Fetch", code="OK"}
inline constexpr char kRequests[] = "weightd_requests_total";
// As kRequests, codes other than OK only.
inline constexpr char kErrors[] = "weightd_request_errors_total";
// {method}: serialized response bytes handed to gRPC.
inline constexpr char kSentBytes[] = "weightd_sent_bytes_total";
// {method}: RPCs in flight (for Fetch and Watch: open streams).
inline constexpr char kActiveStreams[] = "weightd_active_streams";
// {tier="host"}: tensor bytes of loaded snapshots; {tier="cuda:N"}: device
// bytes the GPU tier has allocated and not yet freed (held past eviction
// by a stream included).
inline constexpr char kCacheBytes[] = "weightd_cache_bytes";
// {tier}: versions evicted to stay under the tier's budget.
inline constexpr char kCacheEvictions[] = "weightd_cache_evictions_total";
// {tier}: Acquire found the version loaded / had to load it.
inline constexpr char kCacheHits[] = "weightd_cache_hits_total";
inline constexpr char kCacheMisses[] = "weightd_cache_misses_total";
// {result="ok"|"error"}: seconds to load one checkpoint version.
inline constexpr char kLoadSeconds[] = "weightd_model_load_seconds";
// {state="ready"|...}: model versions by state.
inline constexpr char kModels[] = "weightd_model_versions";
// {reason}: requests refused by a limit (see ServerOptions).
inline constexpr char kLimited[] = "weightd_limited_requests_total";

// Declares every family above in `registry`.
void DeclareAll(MetricsRegistry* registry);

}  // namespace weightd::metrics

#endif  // WEIGHTD_SERVER_METRICS_WEIGHTD_METRICS_H_
