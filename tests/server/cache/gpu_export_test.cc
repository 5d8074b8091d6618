// CUDA IPC export on emulated devices: the handle's offsets, who may have
// one, when a client must take the host path, and the lease.
#include "server/cache/gpu_export.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/gpu/host_backend.h"
#include "tests/server/cache/gpu_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;

class GpuExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HostBackendOptions options;
    options.devices = 3;
    options.no_peer_access = {{0, 2}};
    backend_ = std::make_shared<HostBackend>(options);
    tier_ = std::make_unique<GpuTier>(backend_, GpuTierOptions{});
    snapshot_ = LoadSnapshot("lenet");
    auto residency = tier_->Upload(1, snapshot_->default_view(), 0);
    ASSERT_TRUE(residency.ok()) << residency.status();
    residency_ = *residency;
  }

  std::string Uuid(int device) { return tier_->Info(device)->uuid; }

  std::shared_ptr<HostBackend> backend_;
  std::unique_ptr<GpuTier> tier_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::shared_ptr<const GpuResidency> residency_;
};

TEST_F(GpuExportTest, AClientOnTheSameDeviceGetsTheHandleAndTheOffsets) {
  absl::StatusOr<GpuIpcExport> out = ExportForIpc(*tier_, residency_, {3, 0}, Uuid(0), Role::kRead);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->server_device, 0);
  EXPECT_EQ(out->device_uuid, Uuid(0));
  EXPECT_EQ(out->pci_bus_id, "0000:00:00.0");
  EXPECT_EQ(out->allocation_bytes, residency_->bytes());
  EXPECT_EQ(out->handle, *backend_->IpcHandle(0, residency_->base()));
  ASSERT_EQ(out->tensors.size(), 2u);
  // The bytes at base + offset are the tensor's, as the importer reads them.
  for (int k = 0; k < 2; ++k) {
    const int index = k == 0 ? 3 : 0;
    const auto& placement = out->tensors[k];
    EXPECT_EQ(placement.offset, residency_->placement(index).offset);
    EXPECT_EQ(std::string(static_cast<const char*>(residency_->base()) + placement.offset,
                          placement.bytes),
              HostBytes(*snapshot_->default_view(), index));
  }
}

TEST_F(GpuExportTest, HandlesNeedTheReadRole) {
  absl::StatusOr<GpuIpcExport> out = ExportForIpc(*tier_, residency_, {0}, Uuid(0), Role::kNone);
  EXPECT_TRUE(absl::IsPermissionDenied(out.status())) << out.status();
  EXPECT_TRUE(ExportForIpc(*tier_, residency_, {0}, Uuid(0), Role::kAdmin).ok());
}

TEST_F(GpuExportTest, APeerDeviceGetsTheHandleAndOneWithoutPeerAccessFallsBack) {
  EXPECT_TRUE(ExportForIpc(*tier_, residency_, {0}, Uuid(1), Role::kRead).ok());
  absl::StatusOr<GpuIpcExport> no_peer =
      ExportForIpc(*tier_, residency_, {0}, Uuid(2), Role::kRead);
  EXPECT_TRUE(absl::IsFailedPrecondition(no_peer.status())) << no_peer.status();
  EXPECT_THAT(no_peer.status().message(), HasSubstr("no peer access to cuda:0"));
  EXPECT_THAT(no_peer.status().message(), HasSubstr("use the host path"));
}

TEST_F(GpuExportTest, ADeviceWeightdCannotSeeFallsBack) {
  absl::StatusOr<GpuIpcExport> out =
      ExportForIpc(*tier_, residency_, {0}, "GPU-elsewhere-0", Role::kRead);
  EXPECT_TRUE(absl::IsFailedPrecondition(out.status())) << out.status();
  EXPECT_THAT(out.status().message(), HasSubstr("GPU-elsewhere-0 is not visible to weightd"));
}

TEST_F(GpuExportTest, AnIndexOutOfRangeIsInvalidArgument) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      ExportForIpc(*tier_, residency_, {99}, Uuid(0), Role::kRead).status()));
}

TEST_F(GpuExportTest, TheLeaseKeepsTheAllocationResidentPastEvictionAndDrop) {
  absl::StatusOr<GpuIpcExport> out = ExportForIpc(*tier_, residency_, {0}, Uuid(0), Role::kRead);
  ASSERT_TRUE(out.ok());
  residency_.reset();
  tier_->Drop(1);  // unload while a client has the memory mapped
  EXPECT_EQ(backend_->live_allocations(), 1);
  out->lease.reset();  // the client's connection closed
  EXPECT_EQ(backend_->live_allocations(), 0);
}

}  // namespace
}  // namespace weightd::testing
