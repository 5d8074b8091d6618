// The bookkeeping of the client's CUDA staging ring (private to the client
// library), kept apart from CUDA so that it is tested on machines without a
// GPU. client/cuda_staging.cc owns the pinned memory, the copies and the
// events; this class only says where the next bytes go, when a slot must be
// copied out, and when a slot may not be touched until its copy is done.
#ifndef WEIGHTD_CLIENT_STAGING_RING_H_
#define WEIGHTD_CLIENT_STAGING_RING_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace weightd::client_internal {

struct StagingRingShape {
  size_t slots = 0;
  size_t slot_bytes = 0;
};

// Limits of the ring a Load or Fetch may ask for: each slot is pinned (page-
// locked) memory, which the kernel cannot swap, so the total is bounded.
inline constexpr size_t kMaxStagingSlots = 64;
inline constexpr size_t kMinStagingSlotBytes = 4 << 10;
inline constexpr size_t kMaxStagingRingBytes = size_t{1} << 30;
// The server's chunk size when the request leaves it to the server.
inline constexpr uint32_t kServerDefaultChunkBytes = 1 << 20;

// The ring for a stream whose chunks are `chunk_bytes` (0: the server's
// default) but never above `max_receive_bytes`: `slots` buffers (0: 4) of
// `slot_bytes` (0: one chunk). InvalidArgument naming the option when the
// ring would be empty or pin more than kMaxStagingRingBytes.
absl::StatusOr<StagingRingShape> ChooseStagingRing(uint32_t slots, uint32_t slot_bytes,
                                                   uint32_t chunk_bytes,
                                                   uint32_t max_receive_bytes);

// A ring of `shape.slots` slots of `shape.slot_bytes` each. Bytes of one
// tensor at a time fill the current slot; a full slot, or the last bytes of
// a tensor, is taken as a flush: the owner copies it out (asynchronously) to
// the tensor's memory at the flush's offset, and the slot is in flight until
// the owner retires it. The ring then moves on to the next slot; coming back
// to a slot still in flight, the owner must wait for that copy and retire it
// before writing (Room::in_flight). So a slot is never written while a copy
// reads it, and at most `slots` copies are outstanding.
//
// Not thread-safe: one receiving thread drives it.
class StagingRing {
 public:
  explicit StagingRing(StagingRingShape shape);

  const StagingRingShape& shape() const { return shape_; }

  // Starts a tensor: flush offsets count from 0 again. The previous tensor
  // must have been flushed (TakeFlush returned its last bytes).
  void BeginTensor();

  // Where the next bytes go: `bytes` free at `offset` of `slot`. When
  // `in_flight`, the slot's previous copy must be awaited and Retire(slot)
  // called before writing; Room() then says the same without in_flight.
  struct Room {
    size_t slot = 0;
    size_t offset = 0;
    size_t bytes = 0;
    bool in_flight = false;
  };
  Room NextRoom() const;

  // The slot's copy is done: it may be written again.
  void Retire(size_t slot);

  // `n` bytes (at most NextRoom().bytes) were written at NextRoom().
  void Fill(size_t n);

  // True when the current slot has no room left (take a flush now).
  bool full() const { return fill_ == shape_.slot_bytes; }

  // What the current slot holds, to be copied to the tensor at
  // `tensor_offset`; the slot turns in flight and the ring moves to the next
  // one. `bytes` == 0: nothing to copy, nothing changed.
  struct Flush {
    size_t slot = 0;
    size_t bytes = 0;
    uint64_t tensor_offset = 0;
  };
  Flush TakeFlush();

  // The slots in flight, oldest first (what the end of a load waits for).
  std::vector<size_t> InFlight() const;

  uint64_t flushes() const { return flushes_; }

 private:
  StagingRingShape shape_;
  std::vector<bool> in_flight_;
  size_t current_ = 0;
  size_t fill_ = 0;
  uint64_t tensor_offset_ = 0;  // where the current slot's bytes go
  uint64_t flushes_ = 0;
};

}  // namespace weightd::client_internal

#endif  // WEIGHTD_CLIENT_STAGING_RING_H_
