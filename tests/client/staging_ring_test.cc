// The CUDA staging ring's bookkeeping (client/staging_ring.h), driven the
// way client/cuda_staging.cc drives it, with host memory standing in for
// the device: the bytes that reach the "device" must be the bytes sent, and
// no slot may be written while its copy is outstanding.
#include "client/staging_ring.h"

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weightd::client_internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ChooseStagingRingTest, DefaultsToFourSlotsOfOneChunk) {
  absl::StatusOr<StagingRingShape> shape = ChooseStagingRing(0, 0, 0, 16 << 20);
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(shape->slots, 4u);
  EXPECT_EQ(shape->slot_bytes, 1u << 20);  // the server's default chunk
}

TEST(ChooseStagingRingTest, SlotFollowsTheRequestedChunkButNotPastTheReceiveLimit) {
  EXPECT_EQ(ChooseStagingRing(4, 0, 4 << 20, 16 << 20)->slot_bytes, 4u << 20);
  // The server never sends chunks above the client's receive limit.
  EXPECT_EQ(ChooseStagingRing(4, 0, 32 << 20, 8 << 20)->slot_bytes, 8u << 20);
  EXPECT_EQ(ChooseStagingRing(4, 0, 100, 0)->slot_bytes, kMinStagingSlotBytes);
}

TEST(ChooseStagingRingTest, ExplicitSizesAreKept) {
  absl::StatusOr<StagingRingShape> shape = ChooseStagingRing(2, 64 << 10, 1 << 20, 16 << 20);
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(shape->slots, 2u);
  EXPECT_EQ(shape->slot_bytes, 64u << 10);
}

TEST(ChooseStagingRingTest, RejectsRingsThatAreTooSmallOrPinTooMuch) {
  absl::StatusOr<StagingRingShape> shape = ChooseStagingRing(65, 0, 0, 0);
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shape.status().message(), HasSubstr("cuda_staging.slots is 65"));
  shape = ChooseStagingRing(4, 100, 0, 0);
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shape.status().message(), HasSubstr("cuda_staging.slot_bytes is 100"));
  shape = ChooseStagingRing(64, 32 << 20, 0, 0);  // 2 GiB pinned
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shape.status().message(), HasSubstr("would pin more than"));
}

// The owner's side, as cuda_staging.cc does it: host "slots", copies that
// stay outstanding until the test completes them, a "device" tensor buffer.
class FakeStager {
 public:
  explicit FakeStager(StagingRingShape shape)
      : ring_(shape), slots_(shape.slots * shape.slot_bytes) {}

  void BeginTensor(std::string* dst) {
    dst_ = dst;
    ring_.BeginTensor();
  }

  void Write(const std::string& bytes) {
    std::string_view data(bytes);
    while (!data.empty()) {
      StagingRing::Room room = ring_.NextRoom();
      if (room.in_flight) {
        CompleteCopyOf(room.slot);  // the event wait
        ++waits_;
        ring_.Retire(room.slot);
        room = ring_.NextRoom();
      }
      ASSERT_FALSE(room.in_flight);
      ASSERT_GT(room.bytes, 0u);
      for (const Copy& c : outstanding_) ASSERT_NE(c.slot, room.slot) << "slot written in flight";
      const size_t n = std::min(room.bytes, data.size());
      std::memcpy(&slots_[room.slot * ring_.shape().slot_bytes + room.offset], data.data(), n);
      ring_.Fill(n);
      data.remove_prefix(n);
      if (ring_.full()) Flush();
    }
  }

  void EndTensor() { Flush(); }

  // The end of a load: every outstanding copy completes.
  void Finish() {
    while (!outstanding_.empty()) CompleteCopyOf(outstanding_.front().slot);
    for (size_t slot : ring_.InFlight()) ring_.Retire(slot);
  }

  StagingRing& ring() { return ring_; }
  size_t waits() const { return waits_; }
  size_t outstanding() const { return outstanding_.size(); }
  size_t max_outstanding() const { return max_outstanding_; }

 private:
  struct Copy {
    size_t slot;
    size_t bytes;
    uint64_t offset;
    std::string* dst;
  };

  void Flush() {
    const StagingRing::Flush flush = ring_.TakeFlush();
    if (flush.bytes == 0) return;
    // The "async copy" reads the slot later, when it completes: a slot
    // rewritten before then would show as wrong bytes at the destination.
    outstanding_.push_back({flush.slot, flush.bytes, flush.tensor_offset, dst_});
    max_outstanding_ = std::max(max_outstanding_, outstanding_.size());
  }

  void CompleteCopyOf(size_t slot) {
    // Copies complete in stream order: everything up to that slot's copy.
    while (!outstanding_.empty()) {
      Copy c = outstanding_.front();
      outstanding_.erase(outstanding_.begin());
      if (c.dst->size() < c.offset + c.bytes) c.dst->resize(c.offset + c.bytes);
      std::memcpy(&(*c.dst)[c.offset], &slots_[c.slot * ring_.shape().slot_bytes], c.bytes);
      if (c.slot == slot) return;
    }
  }

  StagingRing ring_;
  std::vector<char> slots_;
  std::string* dst_ = nullptr;
  std::vector<Copy> outstanding_;
  size_t max_outstanding_ = 0;
  size_t waits_ = 0;
};

std::string Bytes(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7) % 251);
  return s;
}

// Chunks of `chunk` bytes of each tensor through the ring.
std::vector<std::string> RunThrough(StagingRingShape shape, const std::vector<size_t>& tensors,
                                    size_t chunk, FakeStager* stager) {
  std::vector<std::string> device(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    const std::string bytes = Bytes(tensors[t], static_cast<int>(t));
    stager->BeginTensor(&device[t]);
    for (size_t at = 0; at < bytes.size(); at += chunk) stager->Write(bytes.substr(at, chunk));
    stager->EndTensor();
  }
  stager->Finish();
  return device;
}

TEST(StagingRingTest, BytesArriveIntactWhenChunksStraddleSlots) {
  const StagingRingShape shape{3, 4096};
  // Chunks of 1000 and 5000 bytes: neither divides nor fits a slot.
  for (size_t chunk : {1000u, 5000u, 4096u}) {
    FakeStager stager(shape);
    const std::vector<size_t> sizes = {50000, 1, 0, 8192, 12345};
    std::vector<std::string> device = RunThrough(shape, sizes, chunk, &stager);
    for (size_t t = 0; t < sizes.size(); ++t) {
      EXPECT_EQ(device[t], Bytes(sizes[t], static_cast<int>(t)))
          << "tensor " << t << ", chunk " << chunk;
    }
    EXPECT_EQ(stager.outstanding(), 0u);
    EXPECT_LE(stager.max_outstanding(), shape.slots);
  }
}

TEST(StagingRingTest, WaitsOnlyWhenItComesBackToASlotInFlight) {
  FakeStager stager({2, 1024});
  std::string device;
  stager.BeginTensor(&device);
  stager.Write(Bytes(1024, 0));  // slot 0 full: copy queued
  stager.Write(Bytes(1024, 1));  // slot 1 full: copy queued
  EXPECT_EQ(stager.waits(), 0u);
  EXPECT_THAT(stager.ring().InFlight(), ElementsAre(0, 1));
  stager.Write(Bytes(10, 2));  // back at slot 0: waits for its copy
  EXPECT_EQ(stager.waits(), 1u);
  EXPECT_THAT(stager.ring().InFlight(), ElementsAre(1));
  stager.EndTensor();
  stager.Finish();
  EXPECT_THAT(stager.ring().InFlight(), IsEmpty());
  EXPECT_EQ(device, Bytes(1024, 0) + Bytes(1024, 1) + Bytes(10, 2));
}

TEST(StagingRingTest, OneCopyPerSlotWhenChunksEqualSlots) {
  FakeStager stager({4, 1 << 16});
  std::vector<std::string> device = RunThrough({4, 1 << 16}, {10 << 16}, 1 << 16, &stager);
  EXPECT_EQ(device[0], Bytes(10 << 16, 0));
  EXPECT_EQ(stager.ring().flushes(), 10u);
}

TEST(StagingRingTest, ATensorEndFlushesAPartialSlotAndOffsetsStartAgain) {
  StagingRing ring({2, 100});
  ring.BeginTensor();
  ring.Fill(30);
  StagingRing::Flush f = ring.TakeFlush();
  EXPECT_EQ(f.slot, 0u);
  EXPECT_EQ(f.bytes, 30u);
  EXPECT_EQ(f.tensor_offset, 0u);
  EXPECT_EQ(ring.TakeFlush().bytes, 0u);  // nothing more: no state change
  EXPECT_EQ(ring.NextRoom().slot, 1u);
  ring.BeginTensor();
  ring.Fill(100);
  EXPECT_TRUE(ring.full());
  f = ring.TakeFlush();
  EXPECT_EQ(f.slot, 1u);
  EXPECT_EQ(f.tensor_offset, 0u);
  ring.Fill(0);
  StagingRing::Room room = ring.NextRoom();
  EXPECT_EQ(room.slot, 0u);
  EXPECT_TRUE(room.in_flight);
  ring.Retire(0);
  ring.Fill(5);
  EXPECT_EQ(ring.TakeFlush().tensor_offset, 100u);
}

}  // namespace
}  // namespace weightd::client_internal
