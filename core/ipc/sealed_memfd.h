// Anonymous memory files that cannot change once written (memfd_create +
// seals): what the same-node path hands out for tensors that are not bytes of
// a checkpoint file (cast, made contiguous, inflated). No gRPC here.
#ifndef WEIGHTD_CORE_IPC_SEALED_MEMFD_H_
#define WEIGHTD_CORE_IPC_SEALED_MEMFD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/ipc/unique_fd.h"

namespace weightd {

// The seals every handed-out memfd carries: no write, no shrink, no grow, and
// no removing them (F_SEAL_SEAL).
int SealedMemfdSeals();

// Write-once builder. Not thread-safe.
class MemfdWriter {
 public:
  // A memfd of `size` bytes (zeros), named `name` (shows in /proc/PID/fd).
  // ResourceExhausted when the memory cannot be had.
  static absl::StatusOr<MemfdWriter> Create(absl::string_view name, uint64_t size);

  // Copies `bytes` to `offset`; OutOfRange past the size.
  absl::Status Write(uint64_t offset, absl::Span<const uint8_t> bytes);

  // Seals the file and returns a read-only descriptor of it (a new open file
  // description through /proc/self/fd, so a client can neither write nor map
  // it writable even where a kernel would let a sealed O_RDWR fd be
  // mprotect'ed); where /proc is missing, the sealed descriptor itself. The
  // writer is spent afterwards.
  absl::StatusOr<UniqueFd> Seal();

  uint64_t size() const { return size_; }

 private:
  MemfdWriter(UniqueFd fd, uint64_t size) : fd_(std::move(fd)), size_(size) {}
  UniqueFd fd_;
  uint64_t size_ = 0;
};

}  // namespace weightd

#endif  // WEIGHTD_CORE_IPC_SEALED_MEMFD_H_
