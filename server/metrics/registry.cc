#include "server/metrics/registry.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace weightd {
namespace {

std::string FormatValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  // Integers (the common case: counts, bytes) without an exponent.
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrFormat("%.0f", value);
  }
  return absl::StrFormat("%.10g", value);
}

std::string RenderLabels(const Labels& labels, const std::string& extra_name = "",
                         const std::string& extra_value = "") {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    absl::StrAppend(&out, first ? "" : ",", name, "=\"", EscapeLabelValue(value), "\"");
    first = false;
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&out, first ? "" : ",", extra_name, "=\"", extra_value, "\"");
  }
  out += "}";
  return out;
}

absl::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void MetricsRegistry::DeclareCounter(const std::string& name, const std::string& help) {
  absl::MutexLock lock(&mu_);
  families_[name] = Family{MetricType::kCounter, help, {}, {}, {}};
}

void MetricsRegistry::DeclareGauge(const std::string& name, const std::string& help) {
  absl::MutexLock lock(&mu_);
  families_[name] = Family{MetricType::kGauge, help, {}, {}, {}};
}

void MetricsRegistry::DeclareHistogram(const std::string& name, const std::string& help,
                                       std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  families_[name] = Family{MetricType::kHistogram, help, std::move(bounds), {}, {}};
}

MetricsRegistry::Family* MetricsRegistry::FindLocked(absl::string_view name, MetricType type) {
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type != type) return nullptr;
  return &it->second;
}

void MetricsRegistry::Add(absl::string_view name, const Labels& labels, double delta) {
  absl::MutexLock lock(&mu_);
  Family* family = FindLocked(name, MetricType::kCounter);
  if (family == nullptr) family = FindLocked(name, MetricType::kGauge);
  if (family != nullptr) family->values[labels] += delta;
}

void MetricsRegistry::Set(absl::string_view name, const Labels& labels, double value) {
  absl::MutexLock lock(&mu_);
  if (Family* family = FindLocked(name, MetricType::kGauge)) family->values[labels] = value;
}

void MetricsRegistry::ClearGauge(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  if (Family* family = FindLocked(name, MetricType::kGauge)) family->values.clear();
}

void MetricsRegistry::Observe(absl::string_view name, const Labels& labels, double value) {
  absl::MutexLock lock(&mu_);
  Family* family = FindLocked(name, MetricType::kHistogram);
  if (family == nullptr) return;
  Histogram& histogram = family->histograms[labels];
  histogram.buckets.resize(family->bounds.size() + 1);
  size_t bucket = 0;
  while (bucket < family->bounds.size() && value > family->bounds[bucket]) ++bucket;
  ++histogram.buckets[bucket];
  histogram.sum += value;
  ++histogram.count;
}

void MetricsRegistry::AddCollector(std::function<void(MetricsRegistry&)> collector) {
  absl::MutexLock lock(&collectors_mu_);
  collectors_.push_back(std::move(collector));
}

double MetricsRegistry::Value(absl::string_view name, const Labels& labels) const {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto value = it->second.values.find(labels);
  return value == it->second.values.end() ? 0 : value->second;
}

std::string MetricsRegistry::Render() {
  {
    absl::MutexLock lock(&collectors_mu_);
    for (const auto& collector : collectors_) collector(*this);
  }
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    absl::StrAppend(&out, "# HELP ", name, " ", family.help, "\n# TYPE ", name, " ",
                    TypeName(family.type), "\n");
    for (const auto& [labels, value] : family.values) {
      absl::StrAppend(&out, name, RenderLabels(labels), " ", FormatValue(value), "\n");
    }
    for (const auto& [labels, histogram] : family.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < histogram.buckets.size(); ++i) {
        cumulative += histogram.buckets[i];
        const std::string le = i < family.bounds.size() ? FormatValue(family.bounds[i]) : "+Inf";
        absl::StrAppend(&out, name, "_bucket", RenderLabels(labels, "le", le), " ", cumulative,
                        "\n");
      }
      absl::StrAppend(&out, name, "_sum", RenderLabels(labels), " ", FormatValue(histogram.sum),
                      "\n", name, "_count", RenderLabels(labels), " ", histogram.count, "\n");
    }
  }
  return out;
}

}  // namespace weightd
