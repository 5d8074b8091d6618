#include "server/local/unix_socket.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/errno_status.h"

namespace weightd {
namespace {

// ScopedUmask instances of this process, one at a time.
std::mutex& UmaskMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}

absl::StatusOr<struct sockaddr_un> Address(const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unix socket path \"", path, "\" is empty or longer than ", sizeof(addr.sun_path) - 1,
        " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace

absl::StatusOr<gid_t> ParseGroup(absl::string_view group) {
  if (group.empty()) return static_cast<gid_t>(-1);
  uint32_t gid;
  if (absl::SimpleAtoi(group, &gid)) return static_cast<gid_t>(gid);
  const std::string name(group);
  std::vector<char> buffer(16384);
  struct group entry;
  struct group* found = nullptr;
  int rc = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0 || found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--unix_socket_group: no group \"", name,
                                                   "\"", rc != 0 ? absl::StrCat(" (", std::strerror(rc), ")") : ""));
  }
  return found->gr_gid;
}

absl::Status ClearStaleSocket(const std::string& path, int type) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(path, "stat", errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket; not replacing it"));
  }
  absl::StatusOr<struct sockaddr_un> addr = Address(path);
  if (!addr.ok()) return addr.status();
  UniqueFd probe(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return ErrnoStatus(path, "socket", errno);
  if (::connect(probe.get(), reinterpret_cast<const struct sockaddr*>(&*addr), sizeof(*addr)) ==
      0) {
    return absl::AlreadyExistsError(absl::StrCat(
        "another server listens on ", path, " (stop it, or choose another socket path)"));
  }
  const int err = errno;
  // ECONNREFUSED: a socket file whose listener is gone. EPROTOTYPE: a socket
  // of another kind, which is not ours either; both are replaced.
  if (err != ECONNREFUSED && err != EPROTOTYPE) return ErrnoStatus(path, "connect (probe)", err);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(path, "unlink", errno);
  return absl::OkStatus();
}

ScopedUmask::ScopedUmask(mode_t mode) {
  UmaskMutex().lock();
  old_ = ::umask(~mode & 0777);
}

ScopedUmask::~ScopedUmask() {
  ::umask(old_);
  UmaskMutex().unlock();
}

absl::Status ApplySocketAccess(const std::string& path, const UnixSocketAccess& access) {
  if (::chmod(path.c_str(), access.mode) != 0) return ErrnoStatus(path, "chmod", errno);
  if (access.group != static_cast<gid_t>(-1) &&
      ::chown(path.c_str(), static_cast<uid_t>(-1), access.group) != 0) {
    return ErrnoStatus(path, absl::StrCat("chown to group ", access.group), errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> ListenSeqpacket(const std::string& path, const UnixSocketAccess& access,
                                         int backlog) {
  absl::StatusOr<struct sockaddr_un> addr = Address(path);
  if (!addr.ok()) return addr.status();
  UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!sock.valid()) return ErrnoStatus(path, "socket", errno);
  {
    ScopedUmask umask(access.mode);
    if (::bind(sock.get(), reinterpret_cast<const struct sockaddr*>(&*addr), sizeof(*addr)) != 0) {
      return ErrnoStatus(path, "bind", errno);
    }
  }
  absl::Status applied = ApplySocketAccess(path, access);
  if (!applied.ok()) {
    ::unlink(path.c_str());
    return applied;
  }
  if (::listen(sock.get(), backlog) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return ErrnoStatus(path, "listen", err);
  }
  return sock;
}

}  // namespace weightd
