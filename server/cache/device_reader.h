// Device-to-host streaming of a GPU-resident tensor through pinned staging
// buffers, double-buffered: while the bytes of one staging buffer are being
// sent, the next buffer's copy runs on the device's copy engine. No gRPC:
// FetchReactor (server/service/fetch_reactor.cc) wraps each StagedChunk in
// a slice whose destroy callback drops the chunk's lease, and a staging
// buffer goes back to the pool when gRPC has let go of every slice into it.
#ifndef WEIGHTD_SERVER_CACHE_DEVICE_READER_H_
#define WEIGHTD_SERVER_CACHE_DEVICE_READER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/cache/gpu_tier.h"
#include "server/gpu/device_backend.h"

namespace weightd {

// Pinned host buffers of one size, reused: one is allocated only when none
// is free, never per chunk. Thread-safe. Buffers on loan keep the pool alive.
class StagingPool : public std::enable_shared_from_this<StagingPool> {
 public:
  // At most `max_buffers` buffers of `buffer_bytes` exist at once.
  static std::shared_ptr<StagingPool> Create(std::shared_ptr<DeviceBackend> backend,
                                             uint64_t buffer_bytes, int max_buffers);
  ~StagingPool();

  uint64_t buffer_bytes() const { return buffer_bytes_; }
  // A buffer, back in the pool when the last copy of the pointer is dropped.
  // When max_buffers are on loan, waits up to `wait` for one to come back,
  // then answers ResourceExhausted.
  absl::StatusOr<std::shared_ptr<uint8_t>> Take(absl::Duration wait = absl::Seconds(10));

  int buffers() const;       // allocated and not freed (on loan or free)
  int free_buffers() const;  // in the pool
  int allocations() const;   // pinned allocations ever made

 private:
  StagingPool(std::shared_ptr<DeviceBackend> backend, uint64_t buffer_bytes, int max_buffers)
      : backend_(std::move(backend)), buffer_bytes_(buffer_bytes), max_buffers_(max_buffers) {}
  void Return(uint8_t* buffer);

  const std::shared_ptr<DeviceBackend> backend_;
  const uint64_t buffer_bytes_;
  const int max_buffers_;
  mutable absl::Mutex mu_;
  absl::CondVar returned_;
  std::vector<uint8_t*> free_ ABSL_GUARDED_BY(mu_);
  int buffers_ ABSL_GUARDED_BY(mu_) = 0;
  int allocations_ ABSL_GUARDED_BY(mu_) = 0;
};

// Bytes of a staging buffer, valid while `lease` is held: `offset` onwards
// of the reader's tensor number `tensor` (a position in its index list).
struct StagedChunk {
  absl::Span<const uint8_t> bytes;
  std::shared_ptr<const void> lease;
  size_t tensor = 0;
  uint64_t offset = 0;
};

// Reads tensors of a residency one after another, chunk by chunk, as one
// pipeline: the copy ahead may already belong to the next tensor, so a
// model of many small tensors overlaps copies and sends too. Not
// thread-safe (one stream's reactor uses it under its lock). Holds the
// residency, so the device memory stays while it reads.
class DeviceReader {
 public:
  // Tensors `indices` (into residency->view()->tensors()), in this order.
  // Chunks of `chunk_bytes` (at most the pool's buffer size: a larger
  // request is served in buffer-sized chunks, which the protocol allows).
  DeviceReader(std::shared_ptr<const GpuResidency> residency, std::vector<int> indices,
               uint64_t chunk_bytes);
  // Waits for its copies in flight: their staging buffers may be reused
  // once it returns.
  ~DeviceReader();
  DeviceReader(const DeviceReader&) = delete;
  DeviceReader& operator=(const DeviceReader&) = delete;

  uint64_t chunk_bytes() const { return chunk_bytes_; }
  // Bytes of tensor number `tensor` (a position in the index list).
  uint64_t size(size_t tensor) const { return ranges_[tensor].size; }

  // The next chunk: the rest of the current tensor, then the next tensor's
  // (empty bytes after the last). Blocks until its buffer's copy is done,
  // having started the following buffer's copy first.
  absl::StatusOr<StagedChunk> Next();

 private:
  struct Range {
    const uint8_t* source = nullptr;
    uint64_t size = 0;
  };
  struct Fill {
    std::shared_ptr<uint8_t> buffer;
    size_t tensor = 0;
    uint64_t offset = 0;  // in the tensor
    uint64_t bytes = 0;
    uint64_t ticket = 0;
  };
  // Copies to staging buffers in flight at most, besides the one whose
  // chunks are being handed out: double buffering.
  static constexpr size_t kFillsAhead = 1;

  bool FillsLeft();
  absl::Status StartFill();

  const std::shared_ptr<const GpuResidency> residency_;
  std::vector<Range> ranges_;
  uint64_t chunk_bytes_;
  uint64_t fill_bytes_;
  // Where the next copy starts.
  size_t fill_tensor_ = 0;
  uint64_t fill_offset_ = 0;
  Fill current_;
  uint64_t current_pos_ = 0;
  std::deque<Fill> pending_;
  // Last member: destroyed first, waiting for the copies into the buffers
  // above before they go back to the pool.
  std::unique_ptr<CopyStream> stream_;
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_CACHE_DEVICE_READER_H_
