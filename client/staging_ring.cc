#include "client/staging_ring.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace weightd::client_internal {

absl::StatusOr<StagingRingShape> ChooseStagingRing(uint32_t slots, uint32_t slot_bytes,
                                                   uint32_t chunk_bytes,
                                                   uint32_t max_receive_bytes) {
  StagingRingShape shape;
  shape.slots = slots == 0 ? 4 : slots;
  if (shape.slots > kMaxStagingSlots) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuda_staging.slots is ", slots, "; at most ", kMaxStagingSlots));
  }
  if (slot_bytes != 0) {
    if (slot_bytes < kMinStagingSlotBytes) {
      return absl::InvalidArgumentError(absl::StrCat("cuda_staging.slot_bytes is ", slot_bytes,
                                                     "; at least ", kMinStagingSlotBytes));
    }
    shape.slot_bytes = slot_bytes;
  } else {
    // One slot per chunk: each chunk's copy is queued as soon as it arrived.
    // The server never sends more than the client can receive.
    uint32_t chunk = chunk_bytes == 0 ? kServerDefaultChunkBytes : chunk_bytes;
    if (max_receive_bytes != 0) chunk = std::min(chunk, max_receive_bytes);
    shape.slot_bytes = std::max<size_t>(chunk, kMinStagingSlotBytes);
  }
  if (shape.slots * shape.slot_bytes > kMaxStagingRingBytes) {
    return absl::InvalidArgumentError(absl::StrCat("cuda_staging: ", shape.slots, " slots of ",
                                                   shape.slot_bytes, " bytes would pin more than ",
                                                   kMaxStagingRingBytes, " bytes"));
  }
  return shape;
}

StagingRing::StagingRing(StagingRingShape shape) : shape_(shape), in_flight_(shape.slots) {}

void StagingRing::BeginTensor() { tensor_offset_ = 0; }

StagingRing::Room StagingRing::NextRoom() const {
  Room room;
  room.slot = current_;
  room.offset = fill_;
  room.bytes = shape_.slot_bytes - fill_;
  room.in_flight = in_flight_[current_];
  return room;
}

void StagingRing::Retire(size_t slot) { in_flight_[slot] = false; }

void StagingRing::Fill(size_t n) { fill_ += std::min(n, shape_.slot_bytes - fill_); }

StagingRing::Flush StagingRing::TakeFlush() {
  Flush flush;
  if (fill_ == 0) return flush;
  flush.slot = current_;
  flush.bytes = fill_;
  flush.tensor_offset = tensor_offset_;
  in_flight_[current_] = true;
  tensor_offset_ += fill_;
  fill_ = 0;
  current_ = (current_ + 1) % shape_.slots;
  ++flushes_;
  return flush;
}

std::vector<size_t> StagingRing::InFlight() const {
  std::vector<size_t> out;
  for (size_t i = 0; i < shape_.slots; ++i) {
    const size_t slot = (current_ + i) % shape_.slots;
    if (in_flight_[slot]) out.push_back(slot);
  }
  return out;
}

}  // namespace weightd::client_internal
