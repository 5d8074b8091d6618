// What weightctl's commands against a server share: the --server and
// credential flags, making the client, --version, and turning a failed call
// into a message that says what happened (remote_client.cc).
#ifndef WEIGHTD_CLIENT_WEIGHTCTL_REMOTE_CLIENT_H_
#define WEIGHTD_CLIENT_WEIGHTCTL_REMOTE_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client_core.h"
#include "client/weightctl/args.h"

namespace weightd::cli {

// --server and the credential flags.
std::vector<FlagSpec> ServerFlags();

// The --server flag, else $WEIGHTD_TARGET, else localhost:50051.
std::string ServerTarget(const ParsedArgs& args);

// The client of --server with the credential flags checked; on a bad flag
// prints the reason, sets `*exit_code` (2 for usage) and returns null.
std::unique_ptr<ClientCore> MakeClientOrFail(const ParsedArgs& args, int* exit_code);

// --version N (absent: 0, the newest). InvalidArgument otherwise.
absl::StatusOr<int64_t> VersionFlag(const ParsedArgs& args);

// The message for a failed call: for an unreachable server, what went wrong
// (refused, name not resolved, TLS against a plaintext port...) and what to
// try; for auth errors, the code and where the token came from.
std::string Failure(const absl::Status& status, const ClientOptions& options);

}  // namespace weightd::cli

#endif  // WEIGHTD_CLIENT_WEIGHTCTL_REMOTE_CLIENT_H_
