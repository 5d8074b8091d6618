// Why a listening port cannot be opened. gRPC's BuildAndStart and httplib's
// bind_to_port only say that it failed (gRPC puts the errno in a log line),
// so after a failure the server binds a plain socket to the same address to
// learn the reason. No gRPC here.
#ifndef WEIGHTD_SERVER_BIND_PROBE_H_
#define WEIGHTD_SERVER_BIND_PROBE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace weightd {

// The reason binding `address` (HOST:PORT, [IPV6]:PORT) fails, as strerror
// words it in lower case ("address already in use", "cannot assign requested
// address"); empty when a plain bind with SO_REUSEADDR (and without
// SO_REUSEPORT, as the server binds) succeeds on every address HOST resolves
// to, or when `address` is not HOST:PORT.
std::string BindFailureReason(absl::string_view address);

// "cannot listen on ADDRESS[ (WHAT)]: REASON", REASON from
// BindFailureReason or "unknown reason (see the log)".
std::string CannotListenMessage(absl::string_view address, absl::string_view what = "");

}  // namespace weightd

#endif  // WEIGHTD_SERVER_BIND_PROBE_H_
