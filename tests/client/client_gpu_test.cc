// Load into CUDA modules and Fetch onto cuda:N through the staging ring
// (client/cuda_staging.h), against a real server over files real PyTorch
// wrote, compared bit for bit with what the CPU Load and PyTorch's copy_ give.
// Skips (with a message) where no GPU is present; labelled `gpu` in CTest.
#include <torch/cuda.h>
#include <weightd/client.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/client_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const torch::Device kCuda0(torch::kCUDA, 0);

class ClientGpuTest : public ClientTest {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: GPU load not tested";
    ClientTest::SetUp();
  }
};

TEST_F(ClientGpuTest, LoadIntoCudaModuleEqualsPythonLoadStateDict) {
  LeNet net;
  net->to(kCuda0);
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
  EXPECT_GE(report->staging_copies, 15u);  // one per tensor at least: it took the ring
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.is_cuda());
}

TEST_F(ClientGpuTest, LoadRightAfterANonBlockingMoveSeesTheMoveDone) {
  // The ring's stream waits for the caller's stream: the move's copies of
  // the initial values must not land after (over) the loaded ones.
  for (int i = 0; i < 3; ++i) {
    LeNet net;
    net->to(kCuda0, /*non_blocking=*/true);
    ASSERT_TRUE(client_->Load(*net, "lenet").ok());
    EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
  }
}

TEST_F(ClientGpuTest, Float16IntoCudaFloat32ModuleConvertsOnTheWay) {
  LeNet net;
  net->to(kCuda0);
  LoadOptions options;
  options.chunk_bytes = (64 << 10) + 1;  // odd, above the 64 KiB floor: elements straddle chunks
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet_half", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet_half_into_float32"));
}

TEST_F(ClientGpuTest, ModuleSplitAcrossCudaAndCpuLoadsBothHalves) {
  LeNet net;
  net->conv1->to(kCuda0);
  net->fc1->to(kCuda0);
  net->bn->to(kCuda0);
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
  EXPECT_TRUE(net->conv1->weight.is_cuda());
  EXPECT_TRUE(net->conv2->weight.is_cpu());
}

TEST_F(ClientGpuTest, ModuleSplitAcrossTwoGpusUsesARingPerDevice) {
  if (torch::cuda::device_count() < 2) GTEST_SKIP() << "one CUDA device: no second to split onto";
  LeNet net;
  net->to(kCuda0);
  net->fc2->to(torch::Device(torch::kCUDA, 1));
  net->bn->to(torch::Device(torch::kCUDA, 1));
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
  EXPECT_EQ(net->fc2->weight.device().index(), 1);
}

TEST_F(ClientGpuTest, PartialLoadWritesTheMatchedKeysAndLeavesTheRest) {
  LeNet net;
  net->to(kCuda0);
  torch::Tensor extra = net->register_parameter("extra", torch::full({7}, 3.0f, kCuda0));
  LoadOptions options;
  options.strict = false;
  options.include = {"^fc"};  // conv*, bn: missing, keep their values
  const auto before = Checksums(*net);
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->written, UnorderedElementsAre("fc1.weight", "fc1.bias", "fc2.weight",
                                                    "fc2.bias", "fc3.weight", "fc3.bias"));
  const auto after = Checksums(*net);
  const auto expected = ExpectedChecksums("lenet");
  for (const auto& [name, sum] : after) {
    if (name.rfind("fc", 0) == 0) {
      EXPECT_EQ(sum, expected.at(name)) << name;
    } else {
      EXPECT_EQ(sum, before.at(name)) << name << " changed";
    }
  }
  EXPECT_TRUE(torch::equal(extra.cpu(), torch::full({7}, 3.0f)));
}

// What a failed load leaves: exactly the tensors its report lists.
TEST_F(ClientGpuTest, FailureMidStreamLeavesWhatTheReportSays) {
  TwoVectors module(kCuda0);
  LoadOptions options;
  options.transfer_dtype = DType::kInt64;  // "b" holds a NaN: the server fails there
  LoadReport report;
  absl::Status status = client_->Load(module, "nan", options, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("1 of 2 tensors were written before the failure: a"));
  EXPECT_THAT(report.written, ElementsAre("a"));
  // int64 on the wire, converted on the device into the float32 parameter.
  EXPECT_TRUE(torch::equal(module.a.cpu(), torch::tensor({1.0f, -2.0f, 3.0f, 4.0f})));
  EXPECT_TRUE(torch::equal(module.b.cpu(), torch::zeros({4})));
}

TEST_F(ClientGpuTest, StagedLoadIntoCudaLeavesTheModuleUntouchedOnFailure) {
  TwoVectors module(kCuda0);
  LoadOptions options;
  options.transfer_dtype = DType::kInt64;
  options.staged = true;
  LoadReport report;
  absl::Status status = client_->Load(module, "nan", options, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(report.written, IsEmpty());
  EXPECT_TRUE(torch::equal(module.a.cpu(), torch::zeros({4})));
}

TEST_F(ClientGpuTest, StagedLoadIntoCudaCommitsOnSuccess) {
  LeNet net;
  net->to(kCuda0);
  LoadOptions options;
  options.staged = true;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->written.size(), 15);
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
}

TEST_F(ClientGpuTest, ServerShutDownMidStreamReportsWhatWasWritten) {
  struct FourMatrices : torch::nn::Module {
    FourMatrices() {
      for (const char* name : {"a", "b", "c", "d"}) {
        register_parameter(name, torch::zeros({1024, 2048}, kCuda0));
      }
    }
  } module;
  LoadOptions options;
  bool shut = false;
  options.progress = [&](uint64_t done, uint64_t) {
    if (done > (8u << 20) && !shut) {
      shut = true;
      server_->Shutdown(absl::ZeroDuration());
    }
  };
  LoadReport report;
  absl::Status status = client_->Load(module, "big", options, &report);
  ASSERT_FALSE(status.ok());
  ASSERT_GE(report.written.size(), 1);
  EXPECT_LT(report.written.size(), 4);
  const auto expected = ExpectedChecksums("big");
  for (const std::string& name : report.written) {
    EXPECT_EQ(Checksum(module.named_parameters()[name]), expected.at(name)) << name;
  }
  EXPECT_EQ(module.named_parameters()["d"].abs().sum().item<float>(), 0.0f);
}

TEST_F(ClientGpuTest, FetchPlacesTensorsOnTheChosenDevice) {
  FetchOptions options;
  options.device = kCuda0;
  absl::StatusOr<TensorMap> tensors = client_->Fetch("lenet", options);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_EQ(tensors->keys(), Expected().at("lenet_order").get<std::vector<std::string>>());
  const auto expected = ExpectedChecksums("lenet");
  for (const auto& item : *tensors) {
    EXPECT_TRUE(item.value().is_cuda());
    EXPECT_EQ(Checksum(item.value()), expected.at(item.key()));
  }
}

TEST_F(ClientGpuTest, FetchOntoAMissingDeviceIsInvalidArgument) {
  FetchOptions options;
  options.device =
      torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(torch::cuda::device_count()));
  absl::StatusOr<TensorMap> tensors = client_->Fetch("lenet", options);
  EXPECT_EQ(tensors.status().code(), absl::StatusCode::kInvalidArgument) << tensors.status();
  EXPECT_THAT(tensors.status().message(), HasSubstr("CUDA device(s)"));
}

TEST_F(ClientGpuTest, ARingThatPinsTooMuchIsRejectedBeforeAnyByteMoves) {
  LeNet net;
  net->to(kCuda0);
  LoadOptions options;
  options.cuda_staging.slots = 64;
  options.cuda_staging.slot_bytes = 64u << 20;
  const auto before = Checksums(*net);
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet", options);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument) << report.status();
  EXPECT_EQ(Checksums(*net), before);
}

// ---- every dtype: tests/client/make_gpu_repository.py's checkpoint

const nlohmann::json& GpuExpected() {
  static const nlohmann::json* expected = [] {
    std::ifstream in(std::string(WEIGHTD_CLIENT_GPU_TEST_DATA) + "/expected.json");
    return new nlohmann::json(nlohmann::json::parse(in));
  }();
  return *expected;
}

// Buffers named, shaped and typed as the checkpoint's tensors (dtypes from
// `cast` where given), on `device`; "nc" as a transposed, non-contiguous view.
struct DtypeModule : torch::nn::Module {
  DtypeModule(torch::Device device, const std::map<std::string, std::string>& cast = {}) {
    for (const auto& [name, entry] : GpuExpected().at("dtypes").items()) {
      auto it = cast.find(name);
      const std::string dtype =
          it != cast.end() ? it->second : entry.at("dtype").get<std::string>();
      const c10::ScalarType type = ToScalarType(ParseDType(dtype).value()).value();
      const std::vector<int64_t> shape = entry.at("shape").get<std::vector<int64_t>>();
      torch::Tensor t;
      if (name == "nc") {
        t = torch::zeros({shape[1], shape[0]}, torch::TensorOptions().dtype(type)).t();
      } else {
        t = torch::zeros(shape, torch::TensorOptions().dtype(type));
      }
      register_buffer(name, t.to(device));
    }
  }
};

std::map<std::string, std::string> CastTable() {
  std::map<std::string, std::string> out;
  for (const auto& [name, entry] : GpuExpected().at("cast").items()) {
    out[name] = entry.at("dtype").get<std::string>();
  }
  return out;
}

// A server over make_gpu_repository.py's repository.
class DtypesTest : public ClientTest {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.repository = std::string(WEIGHTD_CLIENT_GPU_TEST_DATA) + "/repo";
    options.listen = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ClientOptions client_options;
    client_options.target = absl::StrCat("127.0.0.1:", server_->port());
    client_ = std::make_unique<Client>(client_options);
  }

  // The sums every buffer must have after a load into DtypeModule(cast).
  static std::map<std::string, std::string> Want(bool cast) {
    std::map<std::string, std::string> out;
    const nlohmann::json& casts = GpuExpected().at("cast");
    for (const auto& [name, entry] : GpuExpected().at("dtypes").items()) {
      out[name] = (cast && casts.contains(name) ? casts.at(name) : entry).at("xxh64");
    }
    return out;
  }
};

// The CPU half of the comparisons below, run everywhere: it checks this
// file's module and expectations against PyTorch where no GPU is at hand.
TEST_F(DtypesTest, EveryDtypeAndCastLoadIntoCpuLikePyTorch) {
  for (bool cast : {false, true}) {
    DtypeModule cpu(torch::kCPU, cast ? CastTable() : std::map<std::string, std::string>{});
    absl::StatusOr<LoadReport> report = client_->Load(cpu, "dtypes");
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(Checksums(cpu), Want(cast)) << (cast ? "cast" : "as stored");
    EXPECT_FALSE(cpu.named_buffers()["nc"].is_contiguous());
  }
}

class ClientGpuDtypesTest : public DtypesTest {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: GPU load not tested";
    DtypesTest::SetUp();
  }

  // Loads into a CPU and a CUDA module of the same dtypes; both must hold
  // the same bits.
  void LoadBoth(const LoadOptions& options, const std::map<std::string, std::string>& cast,
                std::map<std::string, std::string>* sums) {
    DtypeModule cpu(torch::kCPU, cast), cuda(kCuda0, cast);
    absl::StatusOr<LoadReport> on_cpu = client_->Load(cpu, "dtypes", options);
    ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
    absl::StatusOr<LoadReport> on_cuda = client_->Load(cuda, "dtypes", options);
    ASSERT_TRUE(on_cuda.ok()) << on_cuda.status();
    EXPECT_EQ(on_cuda->bytes, on_cpu->bytes);
    EXPECT_GT(on_cuda->staging_copies, 0u);
    *sums = Checksums(cuda);
    EXPECT_EQ(*sums, Checksums(cpu));
    // Still the module's own tensors: "nc" was written through its strides.
    EXPECT_FALSE(cuda.named_buffers()["nc"].is_contiguous());
    EXPECT_TRUE(cuda.named_buffers()["nc"].is_cuda());
  }
};

TEST_F(ClientGpuDtypesTest, EveryDtypeLoadsIntoCudaBitForBitLikeIntoCpu) {
  std::map<std::string, std::string> sums;
  LoadBoth(LoadOptions(), {}, &sums);
  EXPECT_EQ(sums, Want(false));
}

TEST_F(ClientGpuDtypesTest, DtypesConvertOnTheDeviceLikeCopy) {
  std::map<std::string, std::string> sums;
  LoadBoth(LoadOptions(), CastTable(), &sums);
  EXPECT_EQ(sums, Want(true));
}

TEST_F(ClientGpuDtypesTest, ASmallRingWithChunksStraddlingSlotsKeepsEveryByte) {
  LoadOptions options;
  options.chunk_bytes = (64 << 10) + 3;  // chunks and slots never line up
  options.cuda_staging.slots = 2;
  options.cuda_staging.slot_bytes = 40 << 10;
  std::map<std::string, std::string> sums;
  LoadBoth(options, {}, &sums);
  EXPECT_EQ(sums, Want(false));
  DtypeModule cuda(kCuda0);
  absl::StatusOr<LoadReport> report = client_->Load(cuda, "dtypes", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GE(report->staging_copies, report->bytes / (40 << 10));
}

TEST_F(ClientGpuDtypesTest, StagedLoadConvertsOnTheDeviceAtCommit) {
  LoadOptions options;
  options.staged = true;
  std::map<std::string, std::string> sums;
  LoadBoth(options, CastTable(), &sums);
  EXPECT_EQ(sums, Want(true));
}

TEST_F(ClientGpuDtypesTest, FetchOntoTheCurrentDeviceKeepsEveryDtype) {
  FetchOptions options;
  options.device = torch::Device(torch::kCUDA);  // "cuda": the current device
  options.cuda_staging.slots = 1;
  options.cuda_staging.slot_bytes = 64 << 10;
  absl::StatusOr<TensorMap> tensors = client_->Fetch("dtypes", options);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  for (const auto& [name, entry] : GpuExpected().at("dtypes").items()) {
    ASSERT_TRUE(tensors->contains(name)) << name;
    const torch::Tensor& t = (*tensors)[name];
    EXPECT_TRUE(t.is_cuda()) << name;
    EXPECT_EQ(t.sizes().vec(), entry.at("shape").get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(Checksum(t), entry.at("xxh64").get<std::string>()) << name;
  }
}

}  // namespace
}  // namespace weightd::testing
