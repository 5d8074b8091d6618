// The same-node path of the client (private to the client library; DESIGN.md
// section 9). For a unix: target, a fetch first asks LocalFetch for the
// layout and a handle, redeems the handle on the side channel for read-only
// descriptors, maps them, and feeds the mapped bytes to the same FetchSink a
// stream would feed (fetch_stream.h): Load, Fetch, FetchHost and FetchTo all
// take it through RunFetchAuto. Whatever keeps the local path from working
// before the sink has seen anything (an older server, a TCP peer, no side
// channel, a descriptor that does not map) falls back to the stream on the
// same channel, and says why in TransportInfo.
#ifndef WEIGHTD_CLIENT_LOCAL_FETCH_H_
#define WEIGHTD_CLIENT_LOCAL_FETCH_H_

#include <string>

#include "absl/status/status.h"
#include "client/client_core.h"
#include "client/fetch_stream.h"
#include "weightd/v1/weightd.grpc.pb.h"

namespace weightd::client_internal {

// The Unix socket path of a "unix:PATH" or "unix:///PATH" target; empty for
// any other target (unix-abstract: has no directory for a side channel).
std::string UnixTargetPath(absl::string_view target);

// `request` through the local path when options and target allow, else (or
// on a fallback) through RunFetch. `*transport` (may be null) says which.
absl::Status RunFetchAuto(v1::WeightService::Stub* stub, const ClientOptions& options,
                          const v1::FetchRequest& request, FetchSink* sink,
                          TransportInfo* transport);

}  // namespace weightd::client_internal

#endif  // WEIGHTD_CLIENT_LOCAL_FETCH_H_
