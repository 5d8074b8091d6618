// Unix socket files of the daemon (the gRPC socket and its side channel):
// stale-file handling, mode and group. No gRPC here.
#ifndef WEIGHTD_SERVER_LOCAL_UNIX_SOCKET_H_
#define WEIGHTD_SERVER_LOCAL_UNIX_SOCKET_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/ipc/unique_fd.h"

namespace weightd {

// Who may connect: the socket file's permission bits and group.
struct UnixSocketAccess {
  mode_t mode = 0660;
  gid_t group = static_cast<gid_t>(-1);  // -1: the daemon's own group
};

// The group of `--unix_socket_group`: a name or a numeric gid; empty: -1.
// InvalidArgument naming the group when it does not exist.
absl::StatusOr<gid_t> ParseGroup(absl::string_view group);

// Makes `path` free to bind: nothing there is fine; a socket nobody answers
// on (left by a dead daemon) is removed; a socket that accepts connections
// is AlreadyExists ("another server listens on PATH"); anything else (a
// regular file, a directory) is FailedPrecondition. `type` is SOCK_STREAM or
// SOCK_SEQPACKET, the socket kind that would answer.
absl::Status ClearStaleSocket(const std::string& path, int type);

// Sets the process umask so that files created while it lives get no more
// than `mode` (sockets are created by bind, with 0777 & ~umask), and puts
// the old one back. The umask is process-wide: hold this only around the
// bind/BuildAndStart that creates the sockets, and only one at a time.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mode);
  ~ScopedUmask();
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

// chmod to exactly `access.mode`, then chown to `access.group` if set.
absl::Status ApplySocketAccess(const std::string& path, const UnixSocketAccess& access);

// A listening SOCK_SEQPACKET socket bound at `path` (non-blocking,
// close-on-exec), created under a ScopedUmask and given `access`. The caller
// clears stale files first.
absl::StatusOr<UniqueFd> ListenSeqpacket(const std::string& path, const UnixSocketAccess& access,
                                         int backlog);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_LOCAL_UNIX_SOCKET_H_
