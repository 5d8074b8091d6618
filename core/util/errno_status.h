// absl::Status for a failed system call on a file.
#ifndef WEIGHTD_CORE_UTIL_ERRNO_STATUS_H_
#define WEIGHTD_CORE_UTIL_ERRNO_STATUS_H_

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace weightd {

// "<path>: <what>: <strerror>", with a code callers can act on: NotFound,
// PermissionDenied (incl. a read-only file system), ResourceExhausted (disk
// full, quota), else Unavailable.
inline absl::Status ErrnoStatus(absl::string_view path, absl::string_view what, int err) {
  std::string message = absl::StrCat(path, ": ", what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace weightd

#endif  // WEIGHTD_CORE_UTIL_ERRNO_STATUS_H_
