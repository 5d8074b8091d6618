// The server half of LocalFetch without gRPC: plan as Fetch does, lay the
// bytes out (local_layout.h), park the descriptors under a one-time handle.
#ifndef WEIGHTD_SERVER_LOCAL_LOCAL_HANDOFF_H_
#define WEIGHTD_SERVER_LOCAL_LOCAL_HANDOFF_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/cache/fetch_plan.h"
#include "server/cache/snapshot.h"
#include "server/local/handle_table.h"
#include "server/local/local_layout.h"

namespace weightd {
namespace v1 {
class LocalFetchResponse;
}  // namespace v1

// What the service needs to answer LocalFetch. Owned by WeightServer.
struct LocalFetchConfig {
  // Null: the server listens on no Unix socket, LocalFetch is refused.
  HandleTable* handles = nullptr;
  // Base name of the side-channel socket (of the first unix --listen).
  std::string side_channel;
  std::string repository;
  // Tests only: sees (and may spoil) each response before it is sent.
  std::function<void(v1::LocalFetchResponse*)> response_hook;
};

struct LocalHandoff {
  FetchPlan plan;
  // Files without their descriptors (those wait under `handle`).
  LocalLayout layout;
  std::string handle;  // empty when the report is not ok or no file is sent
};

// Plans `spec` over `view` (of `snapshot`, which the handle keeps alive),
// and when the report is ok builds the layout and registers its
// descriptors. Errors as PlanFetch and BuildLocalLayout give them;
// ResourceExhausted when the handle table is full.
absl::StatusOr<LocalHandoff> PrepareLocalHandoff(std::shared_ptr<const Snapshot> snapshot,
                                                 const StateDictView& view, const FetchSpec& spec,
                                                 bool checksums, const LocalFetchConfig& config);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_LOCAL_LOCAL_HANDOFF_H_
