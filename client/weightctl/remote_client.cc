#include "client/weightctl/remote_client.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/weightctl/commands.h"
#include "client/weightctl/grpc_diagnosis.h"
#include "core/util/address.h"

namespace weightd::cli {
namespace {

constexpr char kDefaultServer[] = "localhost:50051";

// A PEM file the channel will need, checked here: the client library falls
// back to the system roots on an unreadable --tls_ca, and a bad key only
// shows later as an opaque handshake failure.
absl::Status CheckPemFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("--", flag, " ", path, ": cannot read (", std::strerror(errno), ")"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, ": not a PEM file"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ClientCore>> MakeClient(const ParsedArgs& args) {
  ClientOptions options;
  options.target = ServerTarget(args);
  // gRPC dials port 0 for "HOST" and truncates ports past 65535.
  if (absl::Status target = CheckTarget(options.target); !target.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--server ", target.message()));
  }
  // A CLI should answer quickly when nothing listens.
  options.max_attempts = 3;
  options.tls_ca = args.Get("tls_ca").value_or("");
  options.tls_cert = args.Get("tls_cert").value_or("");
  options.tls_key = args.Get("tls_key").value_or("");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  for (const char* flag : {"tls_ca", "tls_cert", "tls_key"}) {
    const std::string path = args.Get(flag).value_or("");
    if (path.empty()) continue;
    absl::Status pem = CheckPemFile(flag, path);
    if (!pem.ok()) return absl::FailedPreconditionError(pem.message());
  }
  // Empty: the client library takes WEIGHTD_TOKEN from the environment.
  options.token = args.Get("token").value_or("");
  CaptureGrpcLog();
  return std::make_unique<ClientCore>(options);
}

}  // namespace

std::vector<FlagSpec> ServerFlags() {
  std::vector<FlagSpec> flags = {{"server", true,
                                  "HOST:PORT  the weightd server (default: $WEIGHTD_TARGET, "
                                  "else localhost:50051; dns:///NAME:PORT for every replica)"}};
  for (FlagSpec& f : CredentialFlagSpecs()) flags.push_back(std::move(f));
  return flags;
}

std::string ServerTarget(const ParsedArgs& args) {
  if (std::optional<std::string> server = args.Get("server")) return *server;
  const char* env = std::getenv("WEIGHTD_TARGET");
  return env != nullptr && *env != '\0' ? env : kDefaultServer;
}

std::unique_ptr<ClientCore> MakeClientOrFail(const ParsedArgs& args, int* exit_code) {
  absl::StatusOr<std::unique_ptr<ClientCore>> client = MakeClient(args);
  if (client.ok()) return *std::move(client);
  *exit_code = Fail(client.status().message(), absl::IsInvalidArgument(client.status()) ? 2 : 1);
  return nullptr;
}

absl::StatusOr<int64_t> VersionFlag(const ParsedArgs& args) {
  int64_t version = 0;
  const std::optional<std::string> text = args.Get("version");
  if (text && (!absl::SimpleAtoi(*text, &version) || version < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--version must be a version number (1, 2, ...; leave the flag out for the "
                     "newest), not \"",
                     *text, "\""));
  }
  return version;
}

std::string Failure(const absl::Status& status, const ClientOptions& options) {
  const std::string& server = options.target;
  if (absl::IsUnavailable(status)) {
    return absl::StrCat("server ", server, " unavailable: ", DescribeUnavailable(status, options));
  }
  // Name the code: "unknown bearer token" alone does not say which side
  // (--token, WEIGHTD_TOKEN, the server's tokens file) to look at.
  if (absl::IsUnauthenticated(status) || absl::IsPermissionDenied(status)) {
    return absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message(),
                        " (server ", server, "; token from --token or WEIGHTD_TOKEN)");
  }
  return std::string(status.message());
}

}  // namespace weightd::cli
