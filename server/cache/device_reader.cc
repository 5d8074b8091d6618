#include "server/cache/device_reader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace weightd {

std::shared_ptr<StagingPool> StagingPool::Create(std::shared_ptr<DeviceBackend> backend,
                                                 uint64_t buffer_bytes, int max_buffers) {
  return std::shared_ptr<StagingPool>(new StagingPool(
      std::move(backend), std::max<uint64_t>(buffer_bytes, 4096), std::max(max_buffers, 2)));
}

StagingPool::~StagingPool() {
  absl::MutexLock lock(&mu_);
  for (uint8_t* buffer : free_) backend_->FreePinned(buffer);
}

absl::StatusOr<std::shared_ptr<uint8_t>> StagingPool::Take(absl::Duration wait) {
  uint8_t* buffer = nullptr;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + wait;
    while (free_.empty() && buffers_ >= max_buffers_) {
      if (returned_.WaitWithDeadline(&mu_, deadline) && free_.empty() && buffers_ >= max_buffers_) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "all ", max_buffers_, " pinned staging buffers are in use by other Fetch streams"));
      }
    }
    if (!free_.empty()) {
      buffer = free_.back();
      free_.pop_back();
    } else {
      ++buffers_;  // reserved; allocated below, outside the lock
    }
  }
  if (buffer == nullptr) {
    absl::StatusOr<void*> allocated = backend_->AllocatePinned(buffer_bytes_);
    absl::MutexLock lock(&mu_);
    if (!allocated.ok()) {
      --buffers_;
      returned_.Signal();
      return allocated.status();
    }
    ++allocations_;
    buffer = static_cast<uint8_t*>(*allocated);
  }
  std::shared_ptr<StagingPool> self = shared_from_this();
  return std::shared_ptr<uint8_t>(buffer, [self](uint8_t* b) { self->Return(b); });
}

void StagingPool::Return(uint8_t* buffer) {
  absl::MutexLock lock(&mu_);
  free_.push_back(buffer);
  returned_.Signal();
}

int StagingPool::buffers() const {
  absl::MutexLock lock(&mu_);
  return buffers_;
}

int StagingPool::free_buffers() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(free_.size());
}

int StagingPool::allocations() const {
  absl::MutexLock lock(&mu_);
  return allocations_;
}

DeviceReader::DeviceReader(std::shared_ptr<const GpuResidency> residency, std::vector<int> indices,
                           uint64_t chunk_bytes)
    : residency_(std::move(residency)) {
  for (int index : indices) {
    ranges_.push_back({residency_->data(index), residency_->placement(index).bytes});
  }
  const uint64_t buffer = residency_->staging()->buffer_bytes();
  chunk_bytes_ = std::clamp<uint64_t>(chunk_bytes, 1, buffer);
  // A whole number of chunks per buffer, so chunk offsets are those of the
  // host path (multiples of chunk_bytes from the tensor's start).
  fill_bytes_ = buffer / chunk_bytes_ * chunk_bytes_;
}

DeviceReader::~DeviceReader() { stream_.reset(); }

bool DeviceReader::FillsLeft() {
  while (fill_tensor_ < ranges_.size() && fill_offset_ >= ranges_[fill_tensor_].size) {
    ++fill_tensor_;
    fill_offset_ = 0;
  }
  return fill_tensor_ < ranges_.size();
}

absl::Status DeviceReader::StartFill() {
  if (stream_ == nullptr) {
    absl::StatusOr<std::unique_ptr<CopyStream>> stream =
        residency_->backend().CreateStream(residency_->device());
    if (!stream.ok()) return stream.status();
    stream_ = *std::move(stream);
  }
  absl::StatusOr<std::shared_ptr<uint8_t>> buffer = residency_->staging()->Take();
  if (!buffer.ok()) return buffer.status();
  const Range& range = ranges_[fill_tensor_];
  Fill fill;
  fill.buffer = *std::move(buffer);
  fill.tensor = fill_tensor_;
  fill.offset = fill_offset_;
  fill.bytes = std::min(fill_bytes_, range.size - fill_offset_);
  absl::StatusOr<uint64_t> ticket =
      stream_->CopyToHostAsync(fill.buffer.get(), range.source + fill_offset_, fill.bytes);
  if (!ticket.ok()) return ticket.status();
  fill.ticket = *ticket;
  fill_offset_ += fill.bytes;
  pending_.push_back(std::move(fill));
  return absl::OkStatus();
}

absl::StatusOr<StagedChunk> DeviceReader::Next() {
  if (current_.buffer == nullptr || current_pos_ == current_.bytes) {
    // Our reference goes; slices gRPC still holds keep the buffer out of
    // the pool until they are destroyed.
    current_ = Fill();
    // Start the following copy before waiting for this one: it runs while
    // this buffer's chunks are sent.
    while (pending_.size() < 1 + kFillsAhead && FillsLeft()) {
      absl::Status started = StartFill();
      if (!started.ok()) return started;
    }
    if (pending_.empty()) return StagedChunk{};  // every tensor handed out
    Fill next = std::move(pending_.front());
    pending_.pop_front();
    absl::Status done = stream_->Wait(next.ticket);
    if (!done.ok()) return done;
    current_ = std::move(next);
    current_pos_ = 0;
  }
  const uint64_t n = std::min(chunk_bytes_, current_.bytes - current_pos_);
  StagedChunk chunk;
  chunk.bytes = absl::Span<const uint8_t>(current_.buffer.get() + current_pos_, n);
  chunk.lease = current_.buffer;
  chunk.tensor = current_.tensor;
  chunk.offset = current_.offset + current_pos_;
  current_pos_ += n;
  return chunk;
}

}  // namespace weightd
