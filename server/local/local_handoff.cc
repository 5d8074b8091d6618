#include "server/local/local_handoff.h"

#include <utility>

namespace weightd {

absl::StatusOr<LocalHandoff> PrepareLocalHandoff(std::shared_ptr<const Snapshot> snapshot,
                                                 const StateDictView& view, const FetchSpec& spec,
                                                 bool checksums, const LocalFetchConfig& config) {
  LocalHandoff out;
  absl::StatusOr<FetchPlan> plan = PlanFetch(view, spec);
  if (!plan.ok()) return plan.status();
  out.plan = *std::move(plan);
  // A failing load gets its report and nothing else, as on the stream.
  if (!out.plan.report.ok()) return out;
  LocalLayoutOptions options;
  options.checksums = checksums;
  options.repository = config.repository;
  absl::StatusOr<LocalLayout> layout = BuildLocalLayout(view, out.plan, options);
  if (!layout.ok()) return layout.status();
  out.layout = *std::move(layout);
  if (out.layout.files.empty()) return out;
  PendingHandoff pending;
  for (LocalFileOut& file : out.layout.files) pending.fds.push_back(std::move(file.fd));
  pending.keepalive = std::move(snapshot);
  absl::StatusOr<std::string> handle = config.handles->Add(std::move(pending));
  if (!handle.ok()) return handle.status();
  out.handle = *std::move(handle);
  return out;
}

}  // namespace weightd
