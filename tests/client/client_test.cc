// End-to-end tests of weightd::Client against a real server, checked against
// what real PyTorch's load_state_dict does with the same files.
#include <weightd/client.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/client_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

TEST_F(ClientTest, ListModelsNamesEveryModelOfTheRepository) {
  absl::StatusOr<std::vector<ModelInfo>> models = client_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  std::vector<std::string> names;
  for (const ModelInfo& m : *models) names.push_back(m.name);
  EXPECT_THAT(names, UnorderedElementsAre("big", "classifier", "lenet", "lenet_ddp", "lenet_half",
                                          "lenet_head100", "lenet_whole", "lenet_whole_dp",
                                          "lenet_whole_legacy", "nan"));
}

// torch.save(model), zip and legacy: the server serves model.state_dict().
TEST_F(ClientTest, LoadsAWholeModelFileExactlyLikeItsStateDict) {
  for (const char* model : {"lenet_whole", "lenet_whole_legacy"}) {
    SCOPED_TRACE(model);
    absl::StatusOr<Manifest> manifest = client_->GetManifest(model);
    ASSERT_TRUE(manifest.ok()) << manifest.status();
    std::vector<std::string> names;
    for (const ManifestTensor& t : manifest->tensors) names.push_back(t.name);
    EXPECT_EQ(names, Expected().at("lenet_order").get<std::vector<std::string>>());
    LeNet net;
    LoadOptions options;
    options.strict = true;
    absl::StatusOr<LoadReport> report = client_->Load(*net, model, options);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
    EXPECT_EQ(report->tensors, 15);
  }
}

TEST_F(ClientTest, LoadsAWholeDataParallelModelWithItsPrefixStripped) {
  LeNet net;
  LoadOptions options;
  options.rules = {StripPrefix("module.")};
  options.strict = true;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet_whole_dp", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
}

TEST_F(ClientTest, GetManifestListsTensorsInCheckpointOrder) {
  absl::StatusOr<Manifest> manifest = client_->GetManifest("lenet");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  std::vector<std::string> names;
  for (const ManifestTensor& t : manifest->tensors) names.push_back(t.name);
  EXPECT_EQ(names, Expected().at("lenet_order").get<std::vector<std::string>>());
  EXPECT_EQ(manifest->version, 1);
}

TEST_F(ClientTest, UnknownModelIsNotFound) {
  LeNet net;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "no_such_model");
  EXPECT_EQ(report.status().code(), absl::StatusCode::kNotFound) << report.status();
}

TEST_F(ClientTest, LoadEqualsPythonLoadStateDict) {
  LeNet net;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
  EXPECT_EQ(report->tensors, 15);
  EXPECT_THAT(report->missing_keys, IsEmpty());
  EXPECT_THAT(report->unexpected_keys, IsEmpty());
  EXPECT_GT(report->bytes, 0);
}

TEST_F(ClientTest, LoadedParametersStillRequireGrad) {
  LeNet net;
  ASSERT_TRUE(client_->Load(*net, "lenet").ok());
  EXPECT_TRUE(net->fc1->weight.requires_grad());
  EXPECT_FALSE(net->fc1->weight.grad_fn());
}

TEST_F(ClientTest, DataParallelPrefixIsStrippedByRule) {
  LeNet net;
  LoadOptions options;
  options.rules = {StripPrefix("module.")};
  options.strict = true;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet_ddp", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
}

TEST_F(ClientTest, DataParallelPrefixIsInferredWithAuto) {
  LeNet net;
  LoadOptions options;
  options.auto_prefix = true;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet_ddp", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->inferred_rules, ElementsAre(StripPrefix("module.")));
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
}

TEST_F(ClientTest, DataParallelNamesWithoutRuleAreMissingAndUnexpected) {
  LeNet net;
  const auto before = Checksums(*net);
  LoadReport report;
  absl::Status status = client_->Load(*net, "lenet_ddp", LoadOptions(), &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  // 14: PyTorch's BatchNorm fills num_batches_tracked when no bn.* key came.
  EXPECT_EQ(report.missing_keys.size(), 14);
  EXPECT_EQ(report.unexpected_keys.size(), 15);
  EXPECT_EQ(report.tensors, 0);
  EXPECT_EQ(Checksums(*net), before);
}

// A load that writes nothing used to "succeed" (lenient by default).
TEST_F(ClientTest, ALoadThatMatchesNothingFailsEvenWhenNotStrict) {
  LeNet net;
  LoadOptions options;
  options.strict = false;
  LoadReport report;
  absl::Status status = client_->Load(*net, "lenet_ddp", options, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("no tensor matched: 0 of 15 target names"));
  options.allow_empty = true;
  EXPECT_TRUE(client_->Load(*net, "lenet_ddp", options).ok());
}

TEST_F(ClientTest, ShapeMismatchSkipKeepsTheNewHeadAndLoadsTheRest) {
  LeNet net(100);
  const torch::Tensor head = net->fc3->weight.clone();
  LoadOptions options;
  options.on_shape_mismatch = ShapePolicy::kSkip;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet", options);
  ASSERT_TRUE(report.ok()) << report.status();
  std::vector<std::string> mismatched;
  for (const ShapeMismatch& m : report->mismatched) mismatched.push_back(m.key);
  EXPECT_THAT(mismatched, UnorderedElementsAre("fc3.weight", "fc3.bias", "bn.weight", "bn.bias",
                                               "bn.running_mean", "bn.running_var"));
  EXPECT_TRUE(torch::equal(net->fc3->weight, head));
  const auto expected = ExpectedChecksums("lenet");
  const auto got = Checksums(*net);
  EXPECT_EQ(got.at("conv1.weight"), expected.at("conv1.weight"));
  EXPECT_EQ(got.at("fc2.bias"), expected.at("fc2.bias"));
}

TEST_F(ClientTest, ShapeMismatchErrorFailsAndWritesNothing) {
  LeNet net(100);
  const auto before = Checksums(*net);
  LoadReport report;
  absl::Status status = client_->Load(*net, "lenet", LoadOptions(), &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("size mismatch for fc3.weight"));
  EXPECT_THAT(report.written, IsEmpty());
  EXPECT_EQ(report.mismatched.size(), 6);
  EXPECT_EQ(Checksums(*net), before);
}

TEST_F(ClientTest, IsStrictByDefaultAndFailsWhenKeysAreMissing) {
  LeNet net;
  LoadOptions options;
  options.exclude = {"^bn\\."};
  absl::Status status = client_->Load(*net, "lenet", options, &*std::make_unique<LoadReport>());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("Missing key(s)"));
}

TEST_F(ClientTest, NonStrictLoadReportsMissingKeys) {
  LeNet net;
  LoadOptions options;
  options.exclude = {"^bn\\."};
  options.strict = false;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->missing_keys,
              UnorderedElementsAre("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"));
  EXPECT_EQ(report->tensors, 10);
}

TEST_F(ClientTest, Float16CheckpointConvertsIntoFloat32Module) {
  LeNet net;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet_half");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet_half_into_float32"));
}

TEST_F(ClientTest, Float16ConvertsAcrossChunksThatSplitElements) {
  LeNet net;
  LoadOptions options;
  options.chunk_bytes = (64 << 10) + 1;  // odd, above the floor: elements straddle chunks
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet_half", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet_half_into_float32"));
}

TEST_F(ClientTest, Float32CheckpointConvertsIntoFloat64Module) {
  LeNet net;
  net->to(torch::kFloat64);
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet");
  ASSERT_TRUE(report.ok()) << report.status();
  // LibTorch's Module::to(dtype) also converts the int64 counter, which
  // Python's .double() leaves alone: compare it by value.
  auto got = Checksums(*net);
  auto expected = ExpectedChecksums("lenet_into_float64");
  got.erase("bn.num_batches_tracked");
  expected.erase("bn.num_batches_tracked");
  EXPECT_EQ(got, expected);
  EXPECT_EQ(net->bn->num_batches_tracked.item<double>(), 7.0);
}

TEST_F(ClientTest, Bfloat16TransferHalvesBytesAndRoundsLikeTensorTo) {
  LeNet net;
  LoadOptions options;
  options.transfer_dtype = DType::kBFloat16;
  absl::StatusOr<LoadReport> full = client_->Load(*net, "lenet");
  ASSERT_TRUE(full.ok());
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet", options);
  ASSERT_TRUE(report.ok()) << report.status();
  auto expected = ExpectedChecksums("lenet_bf16_transfer");
  auto got = Checksums(*net);
  got.erase("bn.num_batches_tracked");  // travels as bfloat16 too: 7 survives
  expected.erase("bn.num_batches_tracked");
  EXPECT_EQ(got, expected);
  EXPECT_LT(report->bytes, full->bytes * 6 / 10);
}

TEST_F(ClientTest, FailureMidStreamReportsWhichTensorsWereWritten) {
  TwoVectors module;
  LoadOptions options;
  options.transfer_dtype = DType::kInt64;  // "b" holds a NaN: the server fails there
  LoadReport report;
  absl::Status status = client_->Load(module, "nan", options, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("1 of 2 tensors were written before the failure: a"));
  EXPECT_THAT(report.written, ElementsAre("a"));
  EXPECT_TRUE(torch::equal(module.a, torch::tensor({1.0f, -2.0f, 3.0f, 4.0f})));
  EXPECT_TRUE(torch::equal(module.b, torch::zeros({4})));
}

TEST_F(ClientTest, StagedLoadLeavesModuleUntouchedWhenServerFailsMidStream) {
  TwoVectors module;
  LoadOptions options;
  options.transfer_dtype = DType::kInt64;
  options.staged = true;
  LoadReport report;
  absl::Status status = client_->Load(module, "nan", options, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("staged load: the module was not changed"));
  EXPECT_THAT(report.written, IsEmpty());
  EXPECT_TRUE(torch::equal(module.a, torch::zeros({4})));
}

TEST_F(ClientTest, ServerShutDownMidStreamGivesAClearErrorAndSaysWhatWasWritten) {
  FourMatrices module;
  LoadOptions options;
  std::thread shutdown;
  uint64_t last_total = 0;
  options.progress = [&](uint64_t done, uint64_t total) {
    last_total = total;
    // Once "a" (8 MiB) is in.
    if (done > (8u << 20) && !shutdown.joinable()) {
      shutdown = std::thread([this] { server_->Shutdown(absl::ZeroDuration()); });
      shutdown.join();
    }
  };
  LoadReport report;
  absl::Status status = client_->Load(module, "big", options, &report);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(absl::IsUnavailable(status) || absl::IsCancelled(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("tensors were written before the failure: a"));
  ASSERT_GE(report.written.size(), 1);
  EXPECT_LT(report.written.size(), 4);
  EXPECT_EQ(last_total, 32u << 20);
  const torch::Tensor a = module.named_parameters()["a"];
  EXPECT_NE(a.abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(module.named_parameters()["d"].abs().sum().item<float>(), 0.0f);
}

// A restart of the server (same port) in the middle of a staged load: the
// load fails without touching the module, and the same client loads the
// whole model from the restarted server.
TEST_F(ClientTest, StagedLoadSurvivesAServerRestartWithTheModuleUntouched) {
  const int port = server_->port();
  FourMatrices module;
  LoadOptions options;
  options.staged = true;
  bool restarted = false;
  options.progress = [&](uint64_t done, uint64_t) {
    if (done > (8u << 20) && !restarted) {
      restarted = true;
      server_->Shutdown(absl::ZeroDuration());
    }
  };
  LoadReport report;
  absl::Status status = client_->Load(module, "big", options, &report);
  ASSERT_TRUE(restarted);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("staged load: the module was not changed"));
  EXPECT_THAT(report.written, IsEmpty());
  for (const auto& p : module.named_parameters()) {
    EXPECT_EQ(p.value().abs().sum().item<float>(), 0.0f) << p.key() << " was written";
  }

  server_.reset();
  ServerOptions server_options;
  server_options.repository = TestDataDir() + "/repo";
  server_options.listen = absl::StrCat("127.0.0.1:", port);
  absl::StatusOr<std::unique_ptr<WeightServer>> again = WeightServer::Start(server_options);
  ASSERT_TRUE(again.ok()) << again.status();
  server_ = *std::move(again);
  options.progress = nullptr;
  absl::StatusOr<LoadReport> loaded = client_->Load(module, "big", options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(loaded->written, UnorderedElementsAre("a", "b", "c", "d"));
  EXPECT_EQ(Checksums(module), ExpectedChecksums("big"));
}

TEST_F(ClientTest, StagedLoadCommitsOnSuccess) {
  LeNet net;
  LoadOptions options;
  options.staged = true;
  absl::StatusOr<LoadReport> report = client_->Load(*net, "lenet", options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->written.size(), 15);
  EXPECT_EQ(Checksums(*net), ExpectedChecksums("lenet"));
}

TEST_F(ClientTest, MatchIsADryRunOfLoad) {
  LeNet net(100);
  const auto before = Checksums(*net);
  MatchSpec spec;
  spec.on_shape_mismatch = ShapePolicy::kSkip;
  absl::StatusOr<MatchReport> report = client_->Match(*net, "lenet", spec);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->matched.size(), 9);
  EXPECT_EQ(report->mismatched.size(), 6);
  EXPECT_EQ(Checksums(*net), before);
}

TEST_F(ClientTest, FetchReturnsTensorsInCheckpointOrderOnCpu) {
  FetchOptions options;
  options.device = torch::kCPU;
  absl::StatusOr<TensorMap> tensors = client_->Fetch("lenet", options);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_EQ(tensors->keys(), Expected().at("lenet_order").get<std::vector<std::string>>());
  const auto expected = ExpectedChecksums("lenet");
  for (const auto& item : *tensors) {
    EXPECT_TRUE(item.value().device().is_cpu());
    EXPECT_EQ(Checksum(item.value()), expected.at(item.key())) << item.key();
  }
}

// Where CUDA is absent (this lane's LibTorch, or no device), map_location
// cuda:0 is a clear error, not a LibTorch exception through the stream.
TEST_F(ClientTest, FetchOntoCudaWithoutCudaIsFailedPrecondition) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "CUDA present: client_gpu_test covers it";
  FetchOptions options;
  options.device = torch::Device(torch::kCUDA, 0);
  absl::StatusOr<TensorMap> tensors = client_->Fetch("lenet", options);
  EXPECT_EQ(tensors.status().code(), absl::StatusCode::kFailedPrecondition) << tensors.status();
  EXPECT_THAT(tensors.status().message(), HasSubstr("Fetch onto cuda:0: no CUDA device"));
}

TEST_F(ClientTest, FetchSelectsAndRenamesWithRules) {
  FetchOptions options;
  options.rules.include = {"^module\\.fc"};
  options.rules.rules = {StripPrefix("module.")};
  absl::StatusOr<TensorMap> tensors = client_->Fetch("lenet_ddp", options);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_THAT(tensors->keys(), ElementsAre("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                           "fc3.weight", "fc3.bias"));
}

TEST_F(ClientTest, FetchCastsOnTheServer) {
  FetchOptions options;
  options.keys = {"fc1.weight"};
  options.dtype = DType::kFloat16;
  absl::StatusOr<TensorMap> tensors = client_->Fetch("lenet", options);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), 1);
  EXPECT_EQ((*tensors)["fc1.weight"].scalar_type(), torch::kFloat16);
}

// ClientCore, without LibTorch: what weightctl pull writes from.
TEST_F(ClientTest, FetchHostReturnsContiguousBytesInCheckpointOrder) {
  ClientCore core(client_->options());
  absl::StatusOr<StateDict> tensors = core.FetchHost("lenet");
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  const auto expected = ExpectedChecksums("lenet");
  std::vector<std::string> names;
  for (const auto& [name, tensor] : *tensors) {
    names.push_back(name);
    EXPECT_TRUE(tensor.is_contiguous()) << name;
    EXPECT_EQ(absl::StrCat(absl::Hex(tensor.Checksum(), absl::kZeroPad16)), expected.at(name))
        << name;
  }
  EXPECT_EQ(names, Expected().at("lenet_order").get<std::vector<std::string>>());
}

TEST_F(ClientTest, FetchHostRejectsRulesThatRenameTwoTensorsToOne) {
  ClientCore core(client_->options());
  FetchSpec spec;
  spec.rules.rules = {RegexRule("\\.(weight|bias)$", "")};
  absl::StatusOr<StateDict> tensors = core.FetchHost("lenet", spec);
  EXPECT_EQ(tensors.status().code(), absl::StatusCode::kInvalidArgument) << tensors.status();
  EXPECT_THAT(tensors.status().message(), HasSubstr("rename two tensors"));
}

TEST_F(ClientTest, DnsTargetWithRoundRobinReachesTheServer) {
  ClientOptions options;
  options.target = absl::StrCat("dns:///127.0.0.1:", server_->port());
  options.load_balancing_policy = "round_robin";
  Client client(options);
  EXPECT_TRUE(client.ListModels().ok());
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(ClientRetryTest, RetriesUnavailableUntilAServerStartsLate) {
  const int port = FreePort();
  ClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", port);
  options.max_attempts = 20;
  options.initial_backoff = absl::Milliseconds(50);
  options.max_backoff = absl::Milliseconds(200);
  Client client(options);
  std::unique_ptr<WeightServer> server;
  std::thread starter([&] {
    absl::SleepFor(absl::Milliseconds(700));
    ServerOptions server_options;
    server_options.repository = TestDataDir() + "/repo";
    server_options.listen = absl::StrCat("127.0.0.1:", port);
    absl::StatusOr<std::unique_ptr<WeightServer>> started = WeightServer::Start(server_options);
    ASSERT_TRUE(started.ok()) << started.status();
    server = *std::move(started);
  });
  absl::StatusOr<std::vector<ModelInfo>> models = client.ListModels();
  starter.join();
  EXPECT_TRUE(models.ok()) << models.status();
}

TEST(ClientRetryTest, GivesUpWithUnavailableAfterMaxAttempts) {
  ClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", FreePort());
  options.max_attempts = 2;
  options.initial_backoff = absl::Milliseconds(10);
  Client client(options);
  EXPECT_EQ(client.ListModels().status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace weightd::testing
