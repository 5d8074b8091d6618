// The one place absl::Status and grpc::Status convert, for the server and
// the client alike: both follow google.rpc.Code, so codes map one to one
// (checked by static_asserts in grpc_status.cc).
#ifndef WEIGHTD_PROTO_GRPC_STATUS_H_
#define WEIGHTD_PROTO_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace weightd {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace weightd

#endif  // WEIGHTD_PROTO_GRPC_STATUS_H_
