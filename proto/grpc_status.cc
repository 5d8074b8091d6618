#include "proto/grpc_status.h"

#include <string>

namespace weightd {
namespace {

// Both follow google.rpc.Code, so the numbers convert one to one.
#define WEIGHTD_SAME_CODE(absl_code, grpc_code)                          \
  static_assert(static_cast<int>(absl::StatusCode::absl_code) ==        \
                    static_cast<int>(grpc::StatusCode::grpc_code),      \
                "absl and gRPC status codes differ: " #absl_code)
WEIGHTD_SAME_CODE(kOk, OK);
WEIGHTD_SAME_CODE(kCancelled, CANCELLED);
WEIGHTD_SAME_CODE(kUnknown, UNKNOWN);
WEIGHTD_SAME_CODE(kInvalidArgument, INVALID_ARGUMENT);
WEIGHTD_SAME_CODE(kDeadlineExceeded, DEADLINE_EXCEEDED);
WEIGHTD_SAME_CODE(kNotFound, NOT_FOUND);
WEIGHTD_SAME_CODE(kAlreadyExists, ALREADY_EXISTS);
WEIGHTD_SAME_CODE(kPermissionDenied, PERMISSION_DENIED);
WEIGHTD_SAME_CODE(kResourceExhausted, RESOURCE_EXHAUSTED);
WEIGHTD_SAME_CODE(kFailedPrecondition, FAILED_PRECONDITION);
WEIGHTD_SAME_CODE(kAborted, ABORTED);
WEIGHTD_SAME_CODE(kOutOfRange, OUT_OF_RANGE);
WEIGHTD_SAME_CODE(kUnimplemented, UNIMPLEMENTED);
WEIGHTD_SAME_CODE(kInternal, INTERNAL);
WEIGHTD_SAME_CODE(kUnavailable, UNAVAILABLE);
WEIGHTD_SAME_CODE(kDataLoss, DATA_LOSS);
WEIGHTD_SAME_CODE(kUnauthenticated, UNAUTHENTICATED);
#undef WEIGHTD_SAME_CODE

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace weightd
