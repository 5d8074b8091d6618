// The GPU tier on the CUDA runtime (CTest label gpu). Skips, saying why,
// where cudaGetDeviceCount reports no device (no driver, no GPU, or a build
// without CUDA). What the emulated-device tests check, on real memory:
// upload, staged device-to-host reads, pinned buffer reuse, IPC export
// opened by another process.
#include <stdio.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache/device_reader.h"
#include "server/cache/gpu_export.h"
#include "tests/server/cache/gpu_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;

class GpuCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<int> devices = CudaBackend()->DeviceCount();
    if (!devices.ok()) GTEST_SKIP() << "no CUDA device: " << devices.status().message();
    GpuTierOptions options;
    options.budget_bytes = 64 << 20;
    tier_ = std::make_unique<GpuTier>(CudaBackend(), options);
    ASSERT_TRUE(tier_->availability().ok()) << tier_->availability();
  }

  std::string StagedRead(const std::shared_ptr<const GpuResidency>& residency, size_t index,
                         uint64_t chunk_bytes) {
    DeviceReader reader(residency, {static_cast<int>(index)}, chunk_bytes);
    std::string out;
    for (;;) {
      absl::StatusOr<StagedChunk> chunk = reader.Next();
      EXPECT_TRUE(chunk.ok()) << chunk.status();
      if (!chunk.ok() || chunk->bytes.empty()) break;
      out.append(reinterpret_cast<const char*>(chunk->bytes.data()), chunk->bytes.size());
    }
    return out;
  }

  std::unique_ptr<GpuTier> tier_;
};

TEST_F(GpuCudaTest, StagedReadsOfAnUploadEqualTheHostBytes) {
  uint64_t key = 0;
  for (const std::string model : {"ddp", "lenet", "big"}) {
    std::shared_ptr<const Snapshot> snapshot = LoadSnapshot(model);
    auto residency = tier_->Upload(++key, snapshot->default_view(), 0);
    ASSERT_TRUE(residency.ok()) << residency.status();
    const StateDictView& view = *snapshot->default_view();
    for (size_t i = 0; i < view.tensors().size(); ++i) {
      for (uint64_t chunk : {uint64_t{64} << 10, uint64_t{1} << 20}) {
        const std::string bytes = StagedRead(*residency, i, chunk);
        EXPECT_EQ(bytes, HostBytes(view, i)) << model << " " << view.tensors()[i].first;
        EXPECT_EQ(XXH64(bytes.data(), bytes.size(), 0), view.Checksum(i));
      }
    }
  }
  EXPECT_LE((*tier_->Upload(3, LoadSnapshot("big")->default_view(), 0))->staging()->allocations(),
            3);
}

TEST_F(GpuCudaTest, TheBudgetEvictsOnTheDeviceAndFreesItsMemory) {
  GpuTierOptions options;
  options.budget_bytes = (4 << 20) + (64 << 10);  // one "big"
  GpuTier tier(CudaBackend(), options);
  std::shared_ptr<const GpuResidency> held =
      *tier.Upload(1, LoadSnapshot("big")->default_view(), 0);
  EXPECT_TRUE(
      absl::IsResourceExhausted(tier.Upload(2, LoadSnapshot("lenet")->default_view(), 0).status()));
  const std::string before = StagedRead(held, 0, 1 << 20);
  held.reset();
  ASSERT_TRUE(tier.Upload(2, LoadSnapshot("lenet")->default_view(), 0).ok());
  EXPECT_FALSE(tier.Resident(1));
  EXPECT_EQ(tier.Usage()[0].evictions, 1u);
  EXPECT_LT(tier.Usage()[0].allocated_bytes, 1u << 20);
  EXPECT_EQ(before, HostBytes(*LoadSnapshot("big")->default_view(), 0));
}

TEST_F(GpuCudaTest, ADeviceOrdinalPastTheLastIsRefused) {
  auto residency = tier_->Upload(1, LoadSnapshot("lenet")->default_view(), tier_->device_count());
  EXPECT_TRUE(absl::IsFailedPrecondition(residency.status())) << residency.status();
}

TEST_F(GpuCudaTest, AnotherProcessOpensTheIpcHandleAndReadsTheTensors) {
#ifndef WEIGHTD_GPU_IPC_CHILD
  GTEST_SKIP() << "built without CUDA: no gpu_ipc_child";
#else
  std::shared_ptr<const Snapshot> snapshot = LoadSnapshot("lenet");
  auto residency = tier_->Upload(1, snapshot->default_view(), 0);
  ASSERT_TRUE(residency.ok()) << residency.status();
  const std::string uuid = tier_->Info(0)->uuid;
  std::vector<int> indices;
  for (size_t i = 0; i < snapshot->default_view()->tensors().size(); ++i) indices.push_back(i);
  absl::StatusOr<GpuIpcExport> out = ExportForIpc(*tier_, *residency, indices, uuid, Role::kRead);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->device_uuid, ::testing::StartsWith("GPU-"));
  std::string command = absl::StrCat(WEIGHTD_GPU_IPC_CHILD, " ", out->server_device, " ");
  for (uint8_t b : out->handle) absl::StrAppend(&command, absl::Hex(b, absl::kZeroPad2));
  for (const auto& placement : out->tensors) {
    absl::StrAppend(&command, " ", placement.offset, ":", placement.bytes);
  }
  FILE* child = popen(command.c_str(), "r");
  ASSERT_NE(child, nullptr);
  std::string printed;
  char buffer[256];
  while (fgets(buffer, sizeof(buffer), child) != nullptr) printed += buffer;
  const int status = pclose(child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command << "\n" << printed;
  std::vector<std::string> lines = absl::StrSplit(printed, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    EXPECT_EQ(lines[i],
              absl::StrCat(absl::Hex(snapshot->default_view()->Checksum(i), absl::kZeroPad16)))
        << snapshot->default_view()->tensors()[i].first;
  }
  // The child has closed its mapping; the lease may go.
  out->lease.reset();
#endif
}

}  // namespace
}  // namespace weightd::testing
