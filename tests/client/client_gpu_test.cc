// Load into a CUDA module: pinned staging and non-blocking copies. Skips
// (with a message) where no GPU is present; labelled `gpu` in CTest.
#include <torch/cuda.h>

#include <weightd/client.h>
#include "gtest/gtest.h"
#include "tests/client/client_test_util.h"

namespace weightd::testing {
namespace {

class ClientGpuTest : public ClientTest {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: GPU load not tested";
    ClientTest::SetUp();
  }
};

TEST_F(ClientGpuTest, LoadIntoCudaModuleEqualsPythonLoadStateDict) {
  LeNet net;
  net->to(torch::Device(torch::kCUDA, 0));
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
}

TEST_F(ClientGpuTest, Float16IntoCudaFloat32ModuleConvertsOnTheWay) {
  LeNet net;
  net->to(torch::Device(torch::kCUDA, 0));
  LoadOptions options;
  options.chunk_bytes = (64 << 10) + 1;  // odd, above the 64 KiB floor: elements straddle chunks
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet_half", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet_half_into_float32"));
}

TEST_F(ClientGpuTest, FetchPlacesTensorsOnTheChosenDevice) {
  FetchOptions options;
  options.device = torch::Device(torch::kCUDA, 0);
  absl::StatusOr<TensorMap> tensors = client_->Fetch("lenet", options);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  const auto expected = ExpectedChecksums("lenet");
  for (const auto& item : *tensors) {
    EXPECT_TRUE(item.value().is_cuda());
    EXPECT_EQ(Checksum(item.value()), expected.at(item.key()));
  }
}

}  // namespace
}  // namespace weightd::testing
