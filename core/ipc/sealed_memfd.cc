#include "core/ipc/sealed_memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/util/errno_status.h"

namespace weightd {

int SealedMemfdSeals() { return F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL; }

absl::StatusOr<MemfdWriter> MemfdWriter::Create(absl::string_view name, uint64_t size) {
  const std::string label(name.substr(0, 200));
  UniqueFd fd(::memfd_create(label.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return ErrnoStatus(absl::StrCat("memfd ", label), "memfd_create", errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    const int err = errno;
    return absl::ResourceExhaustedError(absl::StrCat("memfd ", label, ": cannot size to ", size,
                                                     " bytes: ", std::strerror(err)));
  }
  return MemfdWriter(std::move(fd), size);
}

absl::Status MemfdWriter::Write(uint64_t offset, absl::Span<const uint8_t> bytes) {
  if (offset > size_ || bytes.size() > size_ - offset) {
    return absl::OutOfRangeError(absl::StrCat("memfd: ", bytes.size(), " bytes at ", offset,
                                              " past its size ", size_));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd_.get(), bytes.data() + done, bytes.size() - done,
                         static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // tmpfs pages are allocated on write: ENOSPC/ENOMEM mean out of memory.
      const int err = n < 0 ? errno : ENOSPC;
      return absl::ResourceExhaustedError(absl::StrCat("memfd: write of ", bytes.size(),
                                                       " bytes failed: ", std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> MemfdWriter::Seal() {
  if (::fcntl(fd_.get(), F_ADD_SEALS, SealedMemfdSeals()) != 0) {
    return ErrnoStatus("memfd", "F_ADD_SEALS", errno);
  }
  const std::string self = absl::StrCat("/proc/self/fd/", fd_.get());
  UniqueFd read_only(::open(self.c_str(), O_RDONLY | O_CLOEXEC));
  if (!read_only.valid()) return std::move(fd_);
  fd_.reset();
  return read_only;
}

}  // namespace weightd
