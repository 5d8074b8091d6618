// Writes a file so that readers never see it half-written: bytes go to a
// temporary file in the same directory, which is fsynced and renamed over
// the destination on Commit(). Appended bytes are handed to the kernel's
// writeback as they accumulate (sync_file_range), so the final fsync does
// not wait for the whole file. Not thread-safe.
#ifndef WEIGHTD_CORE_CHECKPOINT_ATOMIC_FILE_H_
#define WEIGHTD_CORE_CHECKPOINT_ATOMIC_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace weightd {

class AtomicFile {
 public:
  static absl::StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  // Removes the temporary file unless Commit() succeeded.
  ~AtomicFile();

  absl::Status Write(absl::Span<const uint8_t> bytes);
  absl::Status Write(absl::string_view bytes);
  // Writes at `offset` (pwrite), leaving offset() alone: for headers patched
  // after their data, and for data laid out out of arrival order.
  absl::Status WriteAt(uint64_t offset, absl::Span<const uint8_t> bytes);
  uint64_t offset() const { return offset_; }
  // The temporary file's name, for a signal handler that must remove it.
  const std::string& temp_path() const { return tmp_path_; }
  // Flushes, fsyncs and renames onto the destination.
  absl::Status Commit();

 private:
  AtomicFile(std::string path, std::string tmp_path, int fd)
      : path_(std::move(path)), tmp_path_(std::move(tmp_path)), fd_(fd) {}

  std::string path_;
  std::string tmp_path_;
  int fd_;
  uint64_t offset_ = 0;
  uint64_t writeback_ = 0;  // appended bytes before this were handed to writeback
  bool committed_ = false;
};

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_ATOMIC_FILE_H_
