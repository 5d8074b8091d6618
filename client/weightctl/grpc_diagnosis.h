// Why a call to a server found it unavailable, in words. gRPC folds every
// cause (refused, closed mid-handshake, bad CA) into UNAVAILABLE with the
// message of its last attempt, and puts the real reasons in its own log;
// weightctl keeps that log in memory and reads it back here.
#ifndef WEIGHTD_CLIENT_WEIGHTCTL_GRPC_DIAGNOSIS_H_
#define WEIGHTD_CLIENT_WEIGHTCTL_GRPC_DIAGNOSIS_H_

#include <string>

#include "absl/status/status.h"
#include "client/client_core.h"

namespace weightd::cli {

// Routes gRPC's log lines into memory instead of stderr (a failure stays one
// line), at INFO level, where connection attempts are logged. Not done when
// GRPC_VERBOSITY or GRPC_TRACE is set: then the user asked for gRPC's own log.
// Call before the first channel is made.
void CaptureGrpcLog();

// The message for an UNAVAILABLE `status` of a call with `options`: what
// the captured log says happened (connection refused, name not resolved,
// TLS against a plaintext port, plaintext against TLS, a client certificate
// missing, a CA that does not verify the server, a CA file gRPC cannot
// load) and what to try, then gRPC's message.
std::string DescribeUnavailable(const absl::Status& status, const ClientOptions& options);

}  // namespace weightd::cli

#endif  // WEIGHTD_CLIENT_WEIGHTCTL_GRPC_DIAGNOSIS_H_
