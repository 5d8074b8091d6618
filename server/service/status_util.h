// The one place the server turns absl::Status into grpc::Status.
#ifndef WEIGHTD_SERVER_SERVICE_STATUS_UTIL_H_
#define WEIGHTD_SERVER_SERVICE_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace weightd {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_STATUS_UTIL_H_
