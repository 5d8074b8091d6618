#include "server/bind_probe.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/util/address.h"

namespace weightd {

std::string BindFailureReason(absl::string_view address) {
  absl::StatusOr<HostPort> parsed = ParseHostPort(address);
  if (!parsed.ok()) return "";
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port = absl::StrCat(parsed->port);
  if (int rc = getaddrinfo(parsed->host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    std::string reason = gai_strerror(rc);
    if (!reason.empty()) reason[0] = absl::ascii_tolower(reason[0]);
    return reason;
  }
  std::string reason;
  for (addrinfo* ai = found; ai != nullptr && reason.empty(); ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;  // e.g. no IPv6 on this host; gRPC skips it too
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1) != 0) {
      reason = std::strerror(errno);
      if (!reason.empty()) reason[0] = absl::ascii_tolower(reason[0]);
    }
    close(fd);
  }
  freeaddrinfo(found);
  return reason;
}

std::string CannotListenMessage(absl::string_view address, absl::string_view what) {
  std::string reason = BindFailureReason(address);
  if (reason.empty()) reason = "unknown reason (see the log)";
  return absl::StrCat("cannot listen on ", address, what.empty() ? "" : " (", what,
                      what.empty() ? "" : ")", ": ", reason);
}

}  // namespace weightd
