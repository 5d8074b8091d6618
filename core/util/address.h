// Network addresses as weightd's flags take them, checked before gRPC or
// httplib sees them: gRPC takes "127.0.0.1:99999" and listens on port 34463
// (the port is truncated to 16 bits), ":65536" picks a random port, and a
// target without a port dials port 0. One parser for the daemon's --listen,
// --metrics_listen, --health_listen and weightctl's --server. No gRPC here.
#ifndef WEIGHTD_CORE_UTIL_ADDRESS_H_
#define WEIGHTD_CORE_UTIL_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weightd {

struct HostPort {
  std::string host;  // "127.0.0.1", "::1" (no brackets), "localhost"
  int port = 0;      // 0..65535
};

// "HOST:PORT" or "[IPV6]:PORT" with PORT a decimal number in 0..65535.
// InvalidArgument, naming `address` and the problem (missing host, missing
// port, port out of range, unbracketed IPv6 address), otherwise.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address);

// A gRPC server address the daemon listens on: HOST:PORT as above, or
// "unix:PATH" (a Unix domain socket; PATH not empty).
absl::Status CheckListenAddress(absl::string_view address);

// A gRPC channel target: HOST:PORT as above, "dns:///HOST:PORT" or
// "dns://AUTHORITY/HOST:PORT" (the HOST:PORT part checked), "ipv4:" /
// "ipv6:" lists of HOST:PORT, and "unix:" / "unix-abstract:" targets,
// which are passed through unchanged.
absl::Status CheckTarget(absl::string_view target);

}  // namespace weightd

#endif  // WEIGHTD_CORE_UTIL_ADDRESS_H_
