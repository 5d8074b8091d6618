// A small metrics registry rendered in the Prometheus text format (0.0.4).
// No gRPC and no HTTP here: the service records into it, the exporter
// (http_exporter.h) serves Render().
#ifndef WEIGHTD_SERVER_METRICS_REGISTRY_H_
#define WEIGHTD_SERVER_METRICS_REGISTRY_H_

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace weightd {

// Label name/value pairs, in the order they are rendered.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge, kHistogram };

// Thread-safe. Families are declared once (Declare*), then samples are
// recorded by label set; recording into an undeclared family is a no-op so a
// typo cannot crash the server (the registry tests catch it).
class MetricsRegistry {
 public:
  void DeclareCounter(const std::string& name, const std::string& help);
  void DeclareGauge(const std::string& name, const std::string& help);
  // `bounds`: ascending upper bounds; +Inf is implied.
  void DeclareHistogram(const std::string& name, const std::string& help,
                        std::vector<double> bounds);

  // Counter or gauge: value += delta.
  void Add(absl::string_view name, const Labels& labels, double delta);
  // Gauge: value = v.
  void Set(absl::string_view name, const Labels& labels, double value);
  // Gauge: drops every sample (collectors re-set them at each scrape).
  void ClearGauge(absl::string_view name);
  void Observe(absl::string_view name, const Labels& labels, double value);

  // Called (in order, without the registry's lock) at the start of Render,
  // to set gauges computed on demand (cache bytes, models by state).
  void AddCollector(std::function<void(MetricsRegistry&)> collector);

  // The current value of a counter or gauge sample; 0 when absent. For tests.
  double Value(absl::string_view name, const Labels& labels) const;

  std::string Render();

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // per bound, not cumulative; last: +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    MetricType type;
    std::string help;
    std::vector<double> bounds;
    std::map<Labels, double> values;
    std::map<Labels, Histogram> histograms;
  };

  Family* FindLocked(absl::string_view name, MetricType type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family, std::less<>> families_ ABSL_GUARDED_BY(mu_);
  absl::Mutex collectors_mu_;
  std::vector<std::function<void(MetricsRegistry&)>> collectors_ ABSL_GUARDED_BY(collectors_mu_);
};

// Label values escaped as the text format wants (\\, \", \n).
std::string EscapeLabelValue(absl::string_view value);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_METRICS_REGISTRY_H_
