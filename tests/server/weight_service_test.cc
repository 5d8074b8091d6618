// WeightService through a real channel against a repository written by real
// PyTorch (make_test_repository.py).
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

const v1::Model* FindModel(const v1::ListModelsResponse& list, const std::string& name) {
  for (const v1::Model& m : list.models()) {
    if (m.name() == name) return &m;
  }
  return nullptr;
}

std::vector<v1::TargetTensor> TargetOf(const std::string& model, const std::string& prefix = "") {
  std::vector<v1::TargetTensor> out;
  for (const auto& t : Expected()[model]) {
    v1::TargetTensor& target = out.emplace_back();
    target.set_name(prefix + t["name"].get<std::string>());
    target.set_dtype(t["dtype"].get<std::string>());
    for (int64_t d : t["shape"]) target.add_shape(d);
  }
  return out;
}

class WeightServiceTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    StartServer();
  }
};

TEST_F(WeightServiceTest, ListModelsShowsEveryModelOfTheRepository) {
  grpc::ClientContext context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &list).ok());
  std::vector<std::string> names;
  for (const v1::Model& m : list.models()) names.push_back(m.name());
  EXPECT_THAT(names, ElementsAre("big", "configured", "ddp", "embed", "lenet", "trainer"));
  const v1::Model* ddp = FindModel(list, "ddp");
  ASSERT_NE(ddp, nullptr);
  ASSERT_EQ(ddp->versions_size(), 1);
  EXPECT_EQ(ddp->versions(0).version(), 1);
  EXPECT_EQ(ddp->versions(0).path(), "ddp.pt");
  EXPECT_EQ(ddp->versions(0).state(), v1::MODEL_STATE_UNLOADED);
}

TEST_F(WeightServiceTest, ManifestEqualsWhatPythonSees) {
  for (const std::string model : {"lenet", "trainer", "ddp", "embed", "configured"}) {
    grpc::ClientContext context;
    v1::GetManifestRequest request;
    request.set_model(model);
    v1::GetManifestResponse manifest;
    grpc::Status status = stub_->GetManifest(&context, request, &manifest);
    ASSERT_TRUE(status.ok()) << model << ": " << status.error_message();
    const auto& expected = Expected()[model];
    ASSERT_EQ(manifest.tensors_size(), expected.size()) << model;
    for (int i = 0; i < manifest.tensors_size(); ++i) {
      const v1::TensorInfo& t = manifest.tensors(i);
      EXPECT_EQ(t.name(), expected[i]["name"]) << model;
      EXPECT_EQ(t.dtype(), expected[i]["dtype"]) << t.name();
      EXPECT_EQ(std::vector<int64_t>(t.shape().begin(), t.shape().end()),
                expected[i]["shape"].get<std::vector<int64_t>>())
          << t.name();
      EXPECT_EQ(t.nbytes(), expected[i]["nbytes"]) << t.name();
      EXPECT_EQ(t.checksum(), expected[i]["checksum"]) << t.name();
    }
  }
}

TEST_F(WeightServiceTest, ManifestOfATrainingCheckpointCarriesItsMetadata) {
  grpc::ClientContext context;
  v1::GetManifestRequest request;
  request.set_model("trainer");
  v1::GetManifestResponse manifest;
  ASSERT_TRUE(stub_->GetManifest(&context, request, &manifest).ok());
  EXPECT_EQ(manifest.select(), "model_state_dict");
  EXPECT_EQ(manifest.format(), "torch_zip");
  const auto& fields = manifest.metadata().fields();
  ASSERT_TRUE(fields.count("epoch"));
  EXPECT_EQ(fields.at("epoch").number_value(), 3);
  EXPECT_EQ(fields.at("tag").string_value(), "run-7");
}

TEST_F(WeightServiceTest, MatchReportsWhatTheEngineFinds) {
  grpc::ClientContext context;
  v1::MatchRequest request;
  request.set_model("ddp");
  for (const v1::TargetTensor& t : TargetOf("ddp")) *request.add_target() = t;
  // The target has no "module." prefix, one extra key, and one other shape.
  for (v1::TargetTensor& t : *request.mutable_target()) {
    t.set_name(t.name().substr(strlen("module.")));
    if (t.name() == "double") t.set_shape(0, 3);
  }
  request.add_target()->set_name("extra");
  request.mutable_rules()->add_rules()->set_strip_prefix("module.");
  request.mutable_options()->set_on_shape_mismatch(v1::SHAPE_POLICY_SKIP);
  v1::MatchReport report;
  grpc::Status status = stub_->Match(&context, request, &report);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(report.version(), 1);
  EXPECT_EQ(report.matched_size(), Expected()["ddp"].size() - 1);
  // "double" is skipped: it keeps its initial value and is not missing.
  EXPECT_THAT(report.missing_keys(), ElementsAre("extra"));
  EXPECT_THAT(report.unexpected_keys(), IsEmpty());
  ASSERT_EQ(report.mismatched_size(), 1);
  EXPECT_EQ(report.mismatched(0).key(), "double");
  EXPECT_THAT(report.mismatched(0).source_shape(), ElementsAre(2, 2));
  EXPECT_TRUE(report.ok()) << "no strictness and strict=false: the legacy lenient request";
}

// A request with one missing key under each spelling of the options.
v1::MatchReport MatchLenetMissingOneKey(v1::WeightService::Stub* stub,
                                        const v1::MatchOptions& options) {
  grpc::ClientContext context;
  v1::MatchRequest request;
  request.set_model("lenet");
  for (const v1::TargetTensor& t : TargetOf("lenet")) *request.add_target() = t;
  request.add_target()->set_name("extra");
  *request.mutable_options() = options;
  v1::MatchReport report;
  grpc::Status status = stub->Match(&context, request, &report);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return report;
}

TEST_F(WeightServiceTest, StrictnessDecidesAndUnspecifiedFallsBackToTheLegacyBool) {
  v1::MatchOptions options;
  options.set_strictness(v1::STRICTNESS_STRICT);
  v1::MatchReport strict = MatchLenetMissingOneKey(stub_.get(), options);
  EXPECT_FALSE(strict.ok());
  EXPECT_THAT(strict.errors(), ElementsAre(R"(Missing key(s) in state_dict: "extra".)"));

  options.set_strictness(v1::STRICTNESS_LENIENT);
  options.set_strict(true);  // ignored: strictness says
  EXPECT_TRUE(MatchLenetMissingOneKey(stub_.get(), options).ok());

  options.set_strictness(v1::STRICTNESS_UNSPECIFIED);
  EXPECT_FALSE(MatchLenetMissingOneKey(stub_.get(), options).ok());
  options.set_strict(false);
  EXPECT_TRUE(MatchLenetMissingOneKey(stub_.get(), options).ok());
}

// A strict load into a big model can fail on thousands of keys: the status
// travels in trailing metadata (8 KiB by default in gRPC clients), so it is
// bounded, and the report before it lists every key.
TEST_F(WeightServiceTest, AFailedFetchHasABoundedStatusAndTheWholeReport) {
  v1::FetchRequest request;
  request.set_model("lenet");
  for (const v1::TargetTensor& t : TargetOf("lenet")) *request.add_target() = t;
  for (int i = 0; i < 3000; ++i) {
    request.add_target()->set_name(absl::StrCat("decoder.layers.", i, ".self_attn.weight"));
  }
  request.mutable_options()->set_strictness(v1::STRICTNESS_STRICT);
  FetchResult result = FetchAll(stub_.get(), request);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << result.status.error_message();
  EXPECT_LE(result.status.error_message().size(), 2048u);
  EXPECT_THAT(result.status.error_message(), StartsWith("Missing key(s) in state_dict: "));
  EXPECT_EQ(result.report.missing_keys_size(), 3000);
  EXPECT_TRUE(result.tensors.empty());
}

TEST_F(WeightServiceTest, AMatchOfNoTensorFailsUnlessAllowEmpty) {
  grpc::ClientContext context;
  v1::MatchRequest request;
  request.set_model("ddp");  // names start with "module."
  for (const v1::TargetTensor& t : TargetOf("lenet")) *request.add_target() = t;
  request.mutable_options()->set_strictness(v1::STRICTNESS_LENIENT);
  v1::MatchReport report;
  ASSERT_TRUE(stub_->Match(&context, request, &report).ok());
  EXPECT_FALSE(report.ok());
  EXPECT_THAT(report.errors(),
              ElementsAre(HasSubstr(absl::StrCat("no tensor matched: 0 of ",
                                                 Expected()["lenet"].size(),
                                                 " target names found in the checkpoint"))));
  grpc::ClientContext again;
  request.mutable_options()->set_allow_empty(true);
  ASSERT_TRUE(stub_->Match(&again, request, &report).ok());
  EXPECT_TRUE(report.ok());
}

TEST_F(WeightServiceTest, MatchAppliesTheModelConfigRulesFirst) {
  grpc::ClientContext context;
  v1::MatchRequest request;
  request.set_model("configured");  // model.pbtxt strips "module."
  for (const v1::TargetTensor& t : TargetOf("lenet")) *request.add_target() = t;
  v1::MatchReport report;
  ASSERT_TRUE(stub_->Match(&context, request, &report).ok());
  EXPECT_EQ(report.matched_size(), Expected()["lenet"].size());
  EXPECT_THAT(report.missing_keys(), IsEmpty());
  EXPECT_TRUE(report.ok());
}

TEST_F(WeightServiceTest, FetchedBytesEqualTheFile) {
  for (const std::string model : {"lenet", "ddp", "embed", "big"}) {
    v1::FetchRequest request;
    request.set_model(model);
    request.set_chunk_bytes(64 << 10);  // several chunks for "big"
    FetchResult result = FetchAll(stub_.get(), request);
    ASSERT_TRUE(result.status.ok()) << model << ": " << result.status.error_message();
    const auto& expected = Expected()[model];
    ASSERT_EQ(result.tensors.size(), expected.size()) << model;
    for (size_t i = 0; i < expected.size(); ++i) {
      const FetchedTensor& t = result.tensors[i];
      EXPECT_EQ(t.header.name(), expected[i]["name"]);
      EXPECT_EQ(t.header.dtype(), expected[i]["dtype"]);
      EXPECT_EQ(t.header.nbytes(), t.bytes.size());
      EXPECT_EQ(t.header.checksum(), Xxh64(t.bytes)) << t.header.name();
      EXPECT_EQ(Xxh64(t.bytes), expected[i]["checksum"]) << t.header.name();
    }
  }
}

TEST_F(WeightServiceTest, FetchByKeysSendsOnlyThoseKeys) {
  v1::FetchRequest request;
  request.set_model("lenet");
  request.add_keys("fc3.bias");
  request.add_keys("conv1.weight");
  FetchResult result = FetchAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_EQ(result.tensors.size(), 2);
  EXPECT_EQ(result.tensors[0].header.name(), "fc3.bias");
  EXPECT_EQ(result.tensors[1].header.name(), "conv1.weight");
}

TEST_F(WeightServiceTest, FetchWithATargetSendsTargetNames) {
  v1::FetchRequest request;
  request.set_model("configured");
  for (const v1::TargetTensor& t : TargetOf("lenet")) *request.add_target() = t;
  FetchResult result = FetchAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_EQ(result.tensors.size(), Expected()["lenet"].size());
  EXPECT_EQ(result.tensors[0].header.name(), "conv1.weight");
  EXPECT_EQ(result.tensors[0].header.source(), "module.conv1.weight");
  EXPECT_EQ(Xxh64(result.tensors[0].bytes), Expected()["configured"][0]["checksum"]);
}

TEST_F(WeightServiceTest, FetchCastsOnTheServerAsTensorToDoes) {
  for (const std::string dtype : {"float16", "bfloat16", "float64", "float32"}) {
    v1::FetchRequest request;
    request.set_model("ddp");
    for (const auto& t : Expected()["ddp"]) {
      if (t.contains("cast")) request.add_keys(t["name"].get<std::string>());
    }
    request.set_cast_dtype(dtype);
    FetchResult result = FetchAll(stub_.get(), request);
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    ASSERT_EQ(result.tensors.size(), request.keys_size());
    for (const FetchedTensor& t : result.tensors) {
      EXPECT_EQ(t.header.dtype(), dtype);
      EXPECT_EQ(t.header.checksum(), Xxh64(t.bytes));
      for (const auto& e : Expected()["ddp"]) {
        if (e["name"] == t.header.name()) {
          EXPECT_EQ(Xxh64(t.bytes), e["cast"][dtype]) << t.header.name() << " -> " << dtype;
        }
      }
    }
  }
}

// chunk_bytes 1 turned one 9 MiB tensor into 9.4 M messages.
TEST_F(WeightServiceTest, ChunksBelowTheFloorAreRaisedTo64KiB) {
  v1::FetchRequest request;
  request.set_model("big");
  request.set_chunk_bytes(1);
  int chunks = 0;
  uint64_t largest = 0;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::FetchResponse>> reader =
      stub_->Fetch(&context, request);
  v1::FetchResponse response;
  uint64_t bytes = 0;
  while (reader->Read(&response)) {
    if (!response.has_chunk()) continue;
    ++chunks;
    largest = std::max<uint64_t>(largest, response.chunk().data().size());
    bytes += response.chunk().data().size();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(largest, 64u << 10);
  EXPECT_LE(chunks, static_cast<int>(bytes / (64 << 10)) + Expected()["big"].size());
}

TEST_F(WeightServiceTest, ACastFetchReportsTheBytesItSends) {
  v1::FetchRequest request;
  request.set_model("lenet");
  for (const v1::TargetTensor& t : TargetOf("lenet")) {
    if (t.dtype() == "float32") *request.add_target() = t;
  }
  request.set_cast_dtype("bfloat16");
  FetchResult result = FetchAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  uint64_t sent = 0;
  for (const FetchedTensor& t : result.tensors) sent += t.header.nbytes();
  EXPECT_EQ(result.report.bytes(), sent);
  uint64_t matched = 0;
  for (const v1::MatchedTensor& m : result.report.matched()) matched += m.nbytes();
  EXPECT_EQ(matched, sent);
  EXPECT_GT(sent, 0u);
}

TEST_F(WeightServiceTest, UnknownModelVersionAndKeyAreNotFound) {
  {
    grpc::ClientContext context;
    v1::GetManifestRequest request;
    request.set_model("nope");
    v1::GetManifestResponse manifest;
    EXPECT_EQ(stub_->GetManifest(&context, request, &manifest).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::GetManifestRequest request;
    request.set_model("lenet");
    request.set_version(7);
    v1::GetManifestResponse manifest;
    EXPECT_EQ(stub_->GetManifest(&context, request, &manifest).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  v1::FetchRequest request;
  request.set_model("lenet");
  request.add_keys("no.such.key");
  EXPECT_EQ(FetchAll(stub_.get(), request).status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(WeightServiceTest, BadRegexIsInvalidArgument) {
  grpc::ClientContext context;
  v1::MatchRequest request;
  request.set_model("lenet");
  for (const v1::TargetTensor& t : TargetOf("lenet")) *request.add_target() = t;
  v1::RegexRule* regex = request.mutable_rules()->add_rules()->mutable_regex();
  regex->set_pattern("(unclosed");
  regex->set_replacement("x");
  v1::MatchReport report;
  EXPECT_EQ(stub_->Match(&context, request, &report).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(WeightServiceTest, AFailingLoadSendsTheReportThenFailedPrecondition) {
  v1::FetchRequest request;
  request.set_model("lenet");
  for (const v1::TargetTensor& t : TargetOf("lenet")) *request.add_target() = t;
  request.mutable_target(0)->set_shape(0, 99);  // size mismatch, policy error
  FetchResult result = FetchAll(stub_.get(), request);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_FALSE(result.report.ok());
  EXPECT_EQ(result.report.mismatched_size(), 1);
  EXPECT_THAT(result.tensors, IsEmpty());
}

TEST_F(WeightServiceTest, ConcurrentFetchesOfOneModelAllGetTheSameBytes) {
  std::vector<FetchResult> results(6);
  std::vector<std::thread> threads;
  for (FetchResult& r : results) {
    threads.emplace_back([&] {
      v1::FetchRequest request;
      request.set_model("big");
      request.set_chunk_bytes(256 << 10);
      r = FetchAll(stub_.get(), request);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const FetchResult& r : results) {
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    ASSERT_EQ(r.tensors.size(), 2);
    EXPECT_EQ(Xxh64(r.tensors[0].bytes), Expected()["big"][0]["checksum"]);
    EXPECT_EQ(Xxh64(r.tensors[1].bytes), Expected()["big"][1]["checksum"]);
  }
}

}  // namespace
}  // namespace weightd::testing
