#include "core/checkpoint/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/util/errno_status.h"

namespace weightd {
namespace {

// Appended bytes are handed to writeback every this many bytes, so that the
// disk writes while more bytes arrive and Commit's fsync waits only for the
// tail (a 1 GiB pull: fsync 0.63 s alone before; bench/RESULTS.md).
constexpr uint64_t kWritebackBytes = uint64_t{32} << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  std::string tmp = absl::StrCat(path, ".tmp-XXXXXX");
  int fd = mkstemp(tmp.data());
  if (fd < 0) return ErrnoStatus(path, "cannot create temporary file", errno);
  fchmod(fd, 0644);
  return std::unique_ptr<AtomicFile>(new AtomicFile(path, tmp, fd));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_) unlink(tmp_path_.c_str());
}

absl::Status AtomicFile::Write(absl::string_view bytes) {
  return Write(absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),
                                         bytes.size()));
}

absl::Status AtomicFile::Write(absl::Span<const uint8_t> bytes) {
  const uint8_t* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(path_, "write failed", errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
    offset_ += static_cast<uint64_t>(n);
  }
  if (offset_ - writeback_ >= kWritebackBytes) {
    // Starts writeback without waiting for it. Best effort: a file system
    // without it says EINVAL, and Commit's fsync reports real I/O errors.
    (void)::sync_file_range(fd_, static_cast<off64_t>(writeback_),
                            static_cast<off64_t>(offset_ - writeback_), SYNC_FILE_RANGE_WRITE);
    writeback_ = offset_;
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::WriteAt(uint64_t offset, absl::Span<const uint8_t> bytes) {
  const uint8_t* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(path_, "write failed", errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Commit() {
  if (fsync(fd_) != 0) return ErrnoStatus(path_, "fsync failed", errno);
  if (close(fd_) != 0) {
    fd_ = -1;
    return ErrnoStatus(path_, "close failed", errno);
  }
  fd_ = -1;
  if (rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(path_, "rename failed", errno);
  }
  committed_ = true;
  return absl::OkStatus();
}

}  // namespace weightd
