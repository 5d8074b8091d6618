// Device-to-host staging on emulated devices: every byte arrives, copies
// run ahead of the consumer (double buffering), staging buffers are reused
// and never overwritten while a chunk's lease is held.
#include "server/cache/device_reader.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/gpu/host_backend.h"
#include "tests/server/cache/gpu_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;

class DeviceReaderTest : public ::testing::Test {
 protected:
  void MakeTier(uint64_t staging_bytes, HostBackendOptions options = {}, int max_buffers = 64) {
    backend_ = std::make_shared<HostBackend>(options);
    GpuTierOptions tier_options;
    tier_options.staging_buffer_bytes = staging_bytes;
    tier_options.max_staging_buffers = max_buffers;
    tier_ = std::make_unique<GpuTier>(backend_, tier_options);
    snapshot_ = LoadSnapshot("big");  // "a" and "b", 2 MiB each
    auto residency = tier_->Upload(1, snapshot_->default_view(), 0);
    ASSERT_TRUE(residency.ok()) << residency.status();
    residency_ = *residency;
  }

  // Tensor `index` read through a reader, with each chunk's offset and size.
  std::string ReadAll(size_t index, uint64_t chunk_bytes, std::vector<uint64_t>* sizes = nullptr) {
    DeviceReader reader(residency_, {static_cast<int>(index)}, chunk_bytes);
    std::string out;
    for (;;) {
      absl::StatusOr<StagedChunk> chunk = reader.Next();
      EXPECT_TRUE(chunk.ok()) << chunk.status();
      if (!chunk.ok() || chunk->bytes.empty()) break;
      EXPECT_EQ(chunk->tensor, 0u);
      EXPECT_EQ(chunk->offset, out.size());
      if (sizes != nullptr) sizes->push_back(chunk->bytes.size());
      out.append(reinterpret_cast<const char*>(chunk->bytes.data()), chunk->bytes.size());
    }
    return out;
  }

  std::shared_ptr<HostBackend> backend_;
  std::unique_ptr<GpuTier> tier_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::shared_ptr<const GpuResidency> residency_;
};

TEST_F(DeviceReaderTest, ReadsEveryByteInChunksOfTheRequestedSize) {
  MakeTier(256 << 10);
  const std::string expected = HostBytes(*snapshot_->default_view(), 0);
  // 100000 divides neither the buffer nor the tensor: the last chunk is short.
  for (uint64_t chunk : {uint64_t{64} << 10, uint64_t{100000}, uint64_t{256} << 10}) {
    std::vector<uint64_t> sizes;
    EXPECT_EQ(ReadAll(0, chunk, &sizes), expected) << chunk;
    for (size_t i = 0; i + 1 < sizes.size(); ++i) EXPECT_EQ(sizes[i], chunk);
    EXPECT_LE(sizes.back(), chunk);
  }
}

TEST_F(DeviceReaderTest, AChunkLargerThanAStagingBufferIsServedBufferSized) {
  MakeTier(256 << 10);
  std::vector<uint64_t> sizes;
  EXPECT_EQ(ReadAll(1, 1 << 20, &sizes), HostBytes(*snapshot_->default_view(), 1));
  EXPECT_EQ(sizes.front(), 256u << 10);
}

TEST_F(DeviceReaderTest, TheNextCopyIsStartedBeforeAChunkIsHandedOut) {
  HostBackendOptions options;
  options.copy_delay = absl::Milliseconds(5);
  MakeTier(512 << 10, options);
  DeviceReader reader(residency_, {0}, 64 << 10);
  ASSERT_TRUE(reader.Next().ok());
  // The first buffer is ready and the second one's copy is under way while
  // the consumer sends the first: double buffering.
  EXPECT_EQ(backend_->copies_started(), 2);
  for (int i = 1; i < 8; ++i) ASSERT_TRUE(reader.Next().ok());  // rest of buffer 1
  EXPECT_EQ(backend_->copies_started(), 2);
  ASSERT_TRUE(reader.Next().ok());  // first chunk of buffer 2
  EXPECT_EQ(backend_->copies_started(), 3);
}

TEST_F(DeviceReaderTest, CopiesRunAheadIntoTheNextTensor) {
  HostBackendOptions options;
  options.copy_delay = absl::Milliseconds(5);
  MakeTier(2 << 20, options);  // one buffer per 2 MiB tensor
  DeviceReader reader(residency_, {0, 1}, 1 << 20);
  absl::StatusOr<StagedChunk> first = reader.Next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->tensor, 0u);
  // While tensor "a" goes out, tensor "b"'s copy runs.
  EXPECT_EQ(backend_->copies_started(), 2);
  std::string a(reinterpret_cast<const char*>(first->bytes.data()), first->bytes.size());
  std::string b;
  for (;;) {
    absl::StatusOr<StagedChunk> chunk = reader.Next();
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->bytes.empty()) break;
    std::string& out = chunk->tensor == 0 ? a : b;
    EXPECT_EQ(chunk->offset, out.size());
    out.append(reinterpret_cast<const char*>(chunk->bytes.data()), chunk->bytes.size());
  }
  EXPECT_EQ(a, HostBytes(*snapshot_->default_view(), 0));
  EXPECT_EQ(b, HostBytes(*snapshot_->default_view(), 1));
  EXPECT_EQ(reader.size(0), a.size());
}

TEST_F(DeviceReaderTest, StagingBuffersAreReusedNotAllocatedPerChunk) {
  MakeTier(256 << 10);
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(ReadAll(0, 64 << 10), HostBytes(*snapshot_->default_view(), 0));
  }
  // 2 MiB in 64 KiB chunks is 32 chunks and 8 buffer fills per round.
  EXPECT_LE(residency_->staging()->allocations(), 2);
  EXPECT_EQ(residency_->staging()->free_buffers(), residency_->staging()->buffers());
}

TEST_F(DeviceReaderTest, ABufferStaysUntouchedWhileAChunkLeaseHoldsIt) {
  MakeTier(256 << 10);
  const std::string expected = HostBytes(*snapshot_->default_view(), 0);
  DeviceReader reader(residency_, {0}, 64 << 10);
  absl::StatusOr<StagedChunk> first = reader.Next();
  ASSERT_TRUE(first.ok());
  // gRPC holding the first slice while the rest streams: its buffer must
  // not be refilled under it.
  std::string rest;
  for (;;) {
    absl::StatusOr<StagedChunk> chunk = reader.Next();
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->bytes.empty()) break;
    rest.append(reinterpret_cast<const char*>(chunk->bytes.data()), chunk->bytes.size());
  }
  const std::string held(reinterpret_cast<const char*>(first->bytes.data()), first->bytes.size());
  EXPECT_EQ(held + rest, expected);
  EXPECT_GE(residency_->staging()->allocations(), 3);
}

TEST_F(DeviceReaderTest, AFailedCopyIsAnErrorNotAHang) {
  MakeTier(256 << 10);
  backend_->FailNextCopies(1);
  DeviceReader reader(residency_, {0}, 64 << 10);
  absl::StatusOr<StagedChunk> chunk = reader.Next();
  ASSERT_FALSE(chunk.ok());
  EXPECT_THAT(chunk.status().message(), HasSubstr("failed"));
}

TEST_F(DeviceReaderTest, ReadersWaitForFreeBuffersThenGiveUp) {
  MakeTier(256 << 10, {}, /*max_buffers=*/2);
  absl::StatusOr<std::shared_ptr<uint8_t>> a = residency_->staging()->Take();
  absl::StatusOr<std::shared_ptr<uint8_t>> b = residency_->staging()->Take();
  ASSERT_TRUE(a.ok() && b.ok());
  absl::StatusOr<std::shared_ptr<uint8_t>> c = residency_->staging()->Take(absl::Milliseconds(20));
  EXPECT_TRUE(absl::IsResourceExhausted(c.status())) << c.status();
  a->reset();
  EXPECT_TRUE(residency_->staging()->Take(absl::Milliseconds(20)).ok());
}

TEST_F(DeviceReaderTest, DestroyingAReaderMidStreamWaitsForItsCopies) {
  HostBackendOptions options;
  options.copy_delay = absl::Milliseconds(20);
  MakeTier(256 << 10, options);
  {
    DeviceReader reader(residency_, {0}, 64 << 10);
    ASSERT_TRUE(reader.Next().ok());
  }  // a copy into the second buffer is in flight here
  // Every buffer is back in the pool and no copy writes into it any more.
  EXPECT_EQ(residency_->staging()->free_buffers(), residency_->staging()->buffers());
  EXPECT_EQ(ReadAll(0, 64 << 10), HostBytes(*snapshot_->default_view(), 0));
}

}  // namespace
}  // namespace weightd::testing
