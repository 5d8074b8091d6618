// LocalFetch: proto <-> server/local translation (the logic is in
// server/local/local_handoff.h).
#ifndef WEIGHTD_SERVER_SERVICE_LOCAL_FETCH_H_
#define WEIGHTD_SERVER_SERVICE_LOCAL_FETCH_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/cache/model_store.h"
#include "server/local/local_handoff.h"
#include "weightd/v1/weightd.pb.h"

namespace weightd {

// FailedPrecondition unless the call came over a Unix socket of a server
// that has a side channel (`peer` is grpc's ServerContext::peer()).
absl::Status CheckLocalPeer(absl::string_view peer, const LocalFetchConfig& config);

absl::Status DoLocalFetch(ModelStore* store, const LocalFetchConfig& config, absl::Time deadline,
                          const v1::LocalFetchRequest& request, v1::LocalFetchResponse* response);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_LOCAL_FETCH_H_
