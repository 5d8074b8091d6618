#include "server/metrics/weightd_metrics.h"

namespace weightd::metrics {

void DeclareAll(MetricsRegistry* registry) {
  registry->DeclareCounter(kRequests, "RPCs finished, by method and status code.");
  registry->DeclareCounter(kErrors, "RPCs finished with a status other than OK.");
  registry->DeclareCounter(kSentBytes, "Serialized response message bytes sent, by method.");
  registry->DeclareGauge(kActiveStreams, "RPCs in flight, by method.");
  registry->DeclareGauge(kCacheBytes, "Tensor bytes held by the cache, by tier.");
  registry->DeclareCounter(kCacheEvictions, "Model versions evicted to stay under a tier's budget.");
  registry->DeclareCounter(kCacheHits, "Model version requests served from the cache.");
  registry->DeclareCounter(kCacheMisses, "Model version requests that had to load the version.");
  // Small test checkpoints load in milliseconds, large ones in minutes.
  registry->DeclareHistogram(kLoadSeconds, "Seconds to load one model version.",
                             {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600});
  registry->DeclareGauge(kModels, "Model versions by state.");
  registry->DeclareCounter(kLimited, "Requests refused by a server limit, by limit.");
}

}  // namespace weightd::metrics
