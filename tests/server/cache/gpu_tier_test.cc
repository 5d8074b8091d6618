// The GPU tier's budget, LRU and residency rules, on emulated devices
// (server/gpu/host_backend.h): no GPU is needed.
#include "server/cache/gpu_tier.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/gpu/host_backend.h"
#include "server/metrics/registry.h"
#include "server/metrics/weightd_metrics.h"
#include "tests/server/cache/gpu_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;

// Device bytes of a residency of `model` (its allocation, with alignment).
uint64_t ResidentBytes(const std::string& model) {
  auto backend = std::make_shared<HostBackend>();
  GpuTier tier(backend, {});
  auto residency = tier.Upload(1, LoadSnapshot(model)->default_view(), 0);
  EXPECT_TRUE(residency.ok()) << residency.status();
  return residency.ok() ? (*residency)->bytes() : 0;
}

class GpuTierTest : public ::testing::Test {
 protected:
  // A budget that holds `models` copies of "big" and not one more.
  void MakeTier(int models, int devices = 1) {
    big_bytes_ = ResidentBytes("big");
    HostBackendOptions options;
    options.devices = devices;
    backend_ = std::make_shared<HostBackend>(options);
    GpuTierOptions tier_options;
    tier_options.budget_bytes = big_bytes_ * models + big_bytes_ / 2;
    tier_options.metrics = &metrics_;
    metrics::DeclareAll(&metrics_);
    tier_ = std::make_unique<GpuTier>(backend_, tier_options);
    big_ = LoadSnapshot("big");
  }

  MetricsRegistry metrics_;
  std::shared_ptr<HostBackend> backend_;
  std::unique_ptr<GpuTier> tier_;
  std::shared_ptr<const Snapshot> big_;
  uint64_t big_bytes_ = 0;
};

TEST_F(GpuTierTest, UploadCopiesEveryTensorRowMajorAtAlignedOffsets) {
  MakeTier(4);
  for (const std::string model : {"ddp", "lenet", "big"}) {
    std::shared_ptr<const Snapshot> snapshot = LoadSnapshot(model);
    const StateDictView& view = *snapshot->default_view();
    auto residency = tier_->Upload(model == "ddp"     ? 1
                                   : model == "lenet" ? 2
                                                      : 3,
                                   snapshot->default_view(), 0);
    ASSERT_TRUE(residency.ok()) << residency.status();
    EXPECT_EQ((*residency)->tier(), "cuda:0");
    ASSERT_EQ(view.tensors().size(), snapshot->default_view()->tensors().size());
    for (size_t i = 0; i < view.tensors().size(); ++i) {
      const GpuResidency::Placement& placement = (*residency)->placement(i);
      EXPECT_EQ(placement.offset % 256, 0u) << view.tensors()[i].first;
      EXPECT_LE(placement.offset + placement.bytes, (*residency)->bytes());
      // Emulated device memory is host memory: read it back directly.
      const std::string on_device(reinterpret_cast<const char*>((*residency)->data(i)),
                                  placement.bytes);
      EXPECT_EQ(on_device, HostBytes(view, i)) << model << " " << view.tensors()[i].first;
      EXPECT_EQ(XXH64(on_device.data(), on_device.size(), 0), view.Checksum(i));
    }
  }
}

TEST_F(GpuTierTest, BudgetEvictsTheLeastRecentlyUsedResidency) {
  MakeTier(2);
  ASSERT_TRUE(tier_->Upload(1, big_->default_view(), 0).ok());
  ASSERT_TRUE(tier_->Upload(2, LoadSnapshot("big")->default_view(), 0).ok());
  ASSERT_NE(tier_->Find(1), nullptr);  // 1 is now the most recently used
  ASSERT_TRUE(tier_->Upload(3, LoadSnapshot("big")->default_view(), 0).ok());
  EXPECT_TRUE(tier_->Resident(1));
  std::string why;
  EXPECT_FALSE(tier_->Resident(2, &why));
  EXPECT_THAT(why, HasSubstr("evicted from cuda:0"));
  EXPECT_TRUE(tier_->Resident(3));
  EXPECT_EQ(tier_->Usage()[0].evictions, 1u);
  EXPECT_EQ(tier_->Usage()[0].allocated_bytes, 2 * big_bytes_);
  EXPECT_EQ(backend_->allocated_bytes(0), 2 * big_bytes_);
  EXPECT_EQ(metrics_.Value(metrics::kCacheEvictions, {{"tier", "cuda:0"}}), 1);
}

TEST_F(GpuTierTest, AResidencyHeldByAStreamIsNotEvicted) {
  MakeTier(1);
  std::shared_ptr<const GpuResidency> held = *tier_->Upload(1, big_->default_view(), 0);
  auto second = tier_->Upload(2, LoadSnapshot("big")->default_view(), 0);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("held by models in use"));
  EXPECT_TRUE(tier_->Resident(1));
  held.reset();
  ASSERT_TRUE(tier_->Upload(2, LoadSnapshot("big")->default_view(), 0).ok());
  EXPECT_FALSE(tier_->Resident(1));
  EXPECT_EQ(backend_->live_allocations(), 1);
}

TEST_F(GpuTierTest, MemoryHeldPastADropCountsUntilItIsFreed) {
  MakeTier(1);
  std::shared_ptr<const GpuResidency> held = *tier_->Upload(1, big_->default_view(), 0);
  tier_->Drop(1);
  EXPECT_FALSE(tier_->Resident(1));
  EXPECT_EQ(tier_->Usage()[0].allocated_bytes, big_bytes_);
  EXPECT_EQ(tier_->Usage()[0].resident_bytes, 0u);
  // The dropped copy still occupies the device: no room for another.
  EXPECT_TRUE(
      absl::IsResourceExhausted(tier_->Upload(2, LoadSnapshot("big")->default_view(), 0).status()));
  EXPECT_EQ(held->view()->tensors().size(), 2u);  // still readable
  held.reset();
  EXPECT_EQ(tier_->Usage()[0].allocated_bytes, 0u);
  EXPECT_EQ(backend_->live_allocations(), 0);
  EXPECT_TRUE(tier_->Upload(2, LoadSnapshot("big")->default_view(), 0).ok());
}

TEST_F(GpuTierTest, AResidencyOutlivingItsTierStillFreesItsMemory) {
  MakeTier(1);
  std::shared_ptr<const GpuResidency> held = *tier_->Upload(1, big_->default_view(), 0);
  tier_.reset();
  EXPECT_EQ(backend_->live_allocations(), 1);
  held.reset();
  EXPECT_EQ(backend_->live_allocations(), 0);
}

TEST_F(GpuTierTest, UploadingAKeyTwiceKeepsOneCopy) {
  MakeTier(2);
  auto first = tier_->Upload(1, big_->default_view(), 0);
  auto again = tier_->Upload(1, big_->default_view(), 0);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->get(), again->get());
  EXPECT_EQ(backend_->live_allocations(), 1);
}

TEST_F(GpuTierTest, AStateDictLargerThanTheBudgetIsRefusedForGood) {
  MakeTier(0);  // half of one "big"
  auto residency = tier_->Upload(1, big_->default_view(), 0);
  ASSERT_FALSE(residency.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(residency.status())) << residency.status();
  EXPECT_THAT(residency.status().message(), HasSubstr("more than its budget"));
  EXPECT_THAT(residency.status().message(), HasSubstr("--gpu_cache_bytes"));
  EXPECT_EQ(backend_->live_allocations(), 0);
}

TEST_F(GpuTierTest, ADeviceThatDoesNotExistIsNamed) {
  MakeTier(2, /*devices=*/2);
  auto residency = tier_->Upload(1, big_->default_view(), 2);
  ASSERT_FALSE(residency.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(residency.status()));
  EXPECT_THAT(residency.status().message(), HasSubstr("cuda:2 does not exist: 2 devices"));
  EXPECT_TRUE(tier_->Upload(1, big_->default_view(), 1).ok());
  EXPECT_EQ(backend_->allocated_bytes(1), big_bytes_);
}

TEST_F(GpuTierTest, BudgetsAreKeptPerDevice) {
  MakeTier(1, /*devices=*/2);
  ASSERT_TRUE(tier_->Upload(1, big_->default_view(), 0).ok());
  ASSERT_TRUE(tier_->Upload(2, LoadSnapshot("big")->default_view(), 1).ok());
  EXPECT_TRUE(tier_->Resident(1));
  EXPECT_TRUE(tier_->Resident(2));
  EXPECT_EQ(tier_->Usage()[0].evictions + tier_->Usage()[1].evictions, 0u);
}

TEST_F(GpuTierTest, ADeviceOutOfMemoryIsResourceExhausted) {
  HostBackendOptions options;
  options.memory_bytes = 1 << 20;  // below one "big", the budget above it
  auto backend = std::make_shared<HostBackend>(options);
  GpuTierOptions tier_options;
  tier_options.budget_bytes = uint64_t{1} << 30;
  GpuTier tier(backend, tier_options);
  auto residency = tier.Upload(1, LoadSnapshot("big")->default_view(), 0);
  ASSERT_FALSE(residency.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(residency.status())) << residency.status();
  EXPECT_THAT(residency.status().message(), HasSubstr("out of memory"));
  EXPECT_EQ(tier.Usage()[0].allocated_bytes, 0u);  // the reservation is returned
}

TEST(GpuTierDefaults, TheDefaultBudgetIsHalfOfEachDevice) {
  HostBackendOptions options;
  options.memory_bytes = 64 << 20;
  GpuTier tier(std::make_shared<HostBackend>(options), {});
  EXPECT_EQ(tier.budget_bytes(0), 32u << 20);
  EXPECT_THAT(tier.Describe(), HasSubstr("GPU tier on (host-emulated): cuda:0"));
}

TEST(GpuTierDefaults, WithoutADeviceEveryUploadSaysWhy) {
  GpuTier tier(CudaBackend(), {});
  if (tier.availability().ok()) GTEST_SKIP() << "a CUDA device is present: " << tier.Describe();
  auto residency = tier.Upload(1, LoadSnapshot("lenet")->default_view(), 0);
  ASSERT_FALSE(residency.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(residency.status()));
  EXPECT_EQ(residency.status().message(), tier.availability().message());
  EXPECT_THAT(tier.Describe(), HasSubstr("GPU tier off: "));
  if (BuiltWithCuda()) {
    EXPECT_THAT(residency.status().message(), HasSubstr("cudaGetDeviceCount"));
  } else {
    EXPECT_THAT(residency.status().message(), HasSubstr("built without CUDA (WEIGHTD_CUDA=OFF)"));
  }
}

TEST(GpuTierDefaults, CacheTierNamesParse) {
  EXPECT_EQ(*GpuTier::ParseCacheTier(""), std::nullopt);
  EXPECT_EQ(*GpuTier::ParseCacheTier("host"), std::nullopt);
  EXPECT_EQ(*GpuTier::ParseCacheTier("pinned"), std::nullopt);
  EXPECT_EQ(*GpuTier::ParseCacheTier("cuda"), 0);
  EXPECT_EQ(*GpuTier::ParseCacheTier("cuda:0"), 0);
  EXPECT_EQ(*GpuTier::ParseCacheTier("cuda:7"), 7);
  for (const char* bad :
       {"gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:1:2", "CUDA:0", "cuda:99999"}) {
    auto parsed = GpuTier::ParseCacheTier(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << bad;
  }
}

}  // namespace
}  // namespace weightd::testing
