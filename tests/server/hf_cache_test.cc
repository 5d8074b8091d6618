// A Hugging Face hub cache served as a repository: the real server over a
// cache written by make_hf_cache.py (hub layout, symlinks into blobs/).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/weight_server.h"
#include "weightd/v1/weightd.grpc.pb.h"

namespace weightd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const nlohmann::json& Expected() {
  static const nlohmann::json* expected = [] {
    std::ifstream in(std::string(WEIGHTD_HF_CACHE_DATA) + "/expected.json");
    return new nlohmann::json(nlohmann::json::parse(in));
  }();
  return *expected;
}

std::string Rev(const std::string& key) { return Expected()["revisions"][key]; }

class HfCacheTest : public ::testing::Test {
 protected:
  // The generated cache is only read, never changed, so it is served as is:
  // a copy would have to keep its symlinks relative.
  void StartServer(bool follow_external_symlinks = false,
                   std::string repository = std::string(WEIGHTD_HF_CACHE_DATA) + "/hub") {
    ServerOptions options;
    options.repository = std::move(repository);
    options.follow_external_symlinks = follow_external_symlinks;
    absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials());
    stub_ = v1::WeightService::NewStub(channel);
    admin_ = v1::AdminService::NewStub(channel);
  }

  v1::ListModelsResponse List() {
    grpc::ClientContext context;
    v1::ListModelsResponse response;
    grpc::Status status = stub_->ListModels(&context, v1::ListModelsRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  const v1::Model* Find(const v1::ListModelsResponse& list, const std::string& name) {
    for (const v1::Model& model : list.models()) {
      if (model.name() == name) return &model;
    }
    return nullptr;
  }

  grpc::Status Manifest(const std::string& model, int64_t version, v1::GetManifestResponse* out) {
    grpc::ClientContext context;
    v1::GetManifestRequest request;
    request.set_model(model);
    request.set_version(version);
    return stub_->GetManifest(&context, request, out);
  }

  // The manifest's tensors against torch's, by name (a sharded index lists
  // them in weight_map order, torch in state dict order).
  void ExpectTorchTensors(const v1::GetManifestResponse& manifest, const nlohmann::json& expected) {
    std::map<std::string, const v1::TensorInfo*> got;
    for (const v1::TensorInfo& t : manifest.tensors()) got[t.name()] = &t;
    ASSERT_EQ(got.size(), expected.size());
    for (const nlohmann::json& want : expected) {
      const std::string name = want["name"];
      ASSERT_TRUE(got.count(name)) << name;
      const v1::TensorInfo& t = *got[name];
      EXPECT_EQ(t.dtype(), want["dtype"]) << name;
      EXPECT_EQ(std::vector<int64_t>(t.shape().begin(), t.shape().end()),
                want["shape"].get<std::vector<int64_t>>())
          << name;
      EXPECT_EQ(t.nbytes(), want["nbytes"]) << name;
      EXPECT_EQ(t.checksum(), want["checksum"]) << name;
    }
  }

  std::unique_ptr<WeightServer> server_;
  std::unique_ptr<v1::WeightService::Stub> stub_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TEST_F(HfCacheTest, ServesSnapshotsAsVersionsWithRefsMainNewest) {
  StartServer();
  v1::ListModelsResponse list = List();
  const v1::Model* tiny = Find(list, "org--tiny");
  ASSERT_NE(tiny, nullptr) << list.ShortDebugString();
  std::vector<int64_t> versions;
  std::vector<std::string> paths;
  for (const v1::ModelVersion& v : tiny->versions()) {
    versions.push_back(v.version());
    paths.push_back(v.path());
  }
  // refs/main's snapshot has the oldest mtime and still is the newest; the
  // others follow mtime; "partial" has no checkpoint and no version.
  EXPECT_THAT(versions, ElementsAre(3, 2, 1));
  const std::string snapshots = "models--org--tiny/snapshots/";
  EXPECT_THAT(paths, ElementsAre(snapshots + Rev("main") + "/model.safetensors.index.json",
                                 snapshots + Rev("bin") + "/pytorch_model.bin",
                                 snapshots + Rev("both") + "/model.safetensors"));
}

TEST_F(HfCacheTest, ManifestsEqualTorchsTensorsForEveryVersion) {
  StartServer();
  for (const auto& [version, tensors] : Expected()["models"]["org--tiny"].items()) {
    SCOPED_TRACE(version);
    v1::GetManifestResponse manifest;
    grpc::Status status = Manifest("org--tiny", std::stoll(version), &manifest);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ExpectTorchTensors(manifest, tensors);
  }
}

TEST_F(HfCacheTest, VersionZeroIsRefsMainsSnapshot) {
  StartServer();
  v1::GetManifestResponse manifest;
  grpc::Status status = Manifest("org--tiny", 0, &manifest);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(manifest.version(), 3);
  EXPECT_EQ(manifest.format(), "safetensors_sharded");
  ExpectTorchTensors(manifest, Expected()["models"]["org--tiny"]["3"]);
}

TEST_F(HfCacheTest, SkipsWhatCannotBeServedWithAReason) {
  StartServer();
  v1::ListModelsResponse list = List();
  std::map<std::string, std::string> skipped;
  for (const v1::SkippedEntry& e : list.skipped()) skipped[e.path()] = e.reason();
  EXPECT_THAT(skipped["models--org--tiny/snapshots/" + Rev("partial")], HasSubstr("no checkpoint"));
  EXPECT_THAT(skipped["models--org--nomain"],
              HasSubstr(absl::StrCat("refs/main names snapshot ",
                                     Expected()["nomain_main"].get<std::string>())));
  EXPECT_THAT(skipped["datasets--org--data"], HasSubstr("not a model"));
  const v1::Model* nomain = Find(list, "org--nomain");
  ASSERT_NE(nomain, nullptr);
  EXPECT_EQ(nomain->versions_size(), 0);
  v1::GetManifestResponse manifest;
  EXPECT_EQ(Manifest("org--nomain", 0, &manifest).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(HfCacheTest, RefusesASymlinkLeavingTheRepository) {
  StartServer();
  v1::ListModelsResponse list = List();
  const v1::Model* escape = Find(list, "org--escape");
  ASSERT_NE(escape, nullptr);
  ASSERT_EQ(escape->versions_size(), 1);
  EXPECT_EQ(escape->versions(0).state(), v1::MODEL_STATE_FAILED);
  EXPECT_THAT(escape->versions(0).reason(), HasSubstr("resolves outside the repository"));
  v1::GetManifestResponse manifest;
  grpc::Status status = Manifest("org--escape", 1, &manifest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("--follow_external_symlinks"));
}

// huggingface_hub moves refs/main when another commit is downloaded (here:
// to an existing snapshot that is neither the oldest nor the newest by
// mtime); a Rescan makes that snapshot the newest version.
TEST_F(HfCacheTest, ARescanFollowsRefsMain) {
  namespace fs = std::filesystem;
  const std::string copy = absl::StrCat(::testing::TempDir(), "/weightd_hf_rescan_", getpid());
  fs::remove_all(copy);
  // copy_symlinks: the blobs/ links stay links, as the hub made them.
  fs::copy(std::string(WEIGHTD_HF_CACHE_DATA) + "/hub", copy,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  // A recursive copy gives the snapshot dirs new mtimes; put back the order.
  const fs::path snapshots = fs::path(copy) / "models--org--tiny" / "snapshots";
  const auto t0 = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& [key, minutes] :
       {std::pair<const char*, int>{"main", 0}, {"both", 1}, {"bin", 2}, {"partial", 3}}) {
    fs::last_write_time(snapshots / Rev(key), t0 + std::chrono::minutes(minutes));
  }
  StartServer(/*follow_external_symlinks=*/false, copy);
  std::ofstream(fs::path(copy) / "models--org--tiny" / "refs" / "main") << Rev("both");
  grpc::ClientContext context;
  v1::RescanResponse rescanned;
  ASSERT_TRUE(admin_->Rescan(&context, v1::RescanRequest(), &rescanned).ok());

  const v1::ListModelsResponse list = List();
  const v1::Model* tiny = Find(list, "org--tiny");
  ASSERT_NE(tiny, nullptr);
  std::vector<std::string> paths;
  for (const v1::ModelVersion& v : tiny->versions()) paths.push_back(v.path());
  const std::string prefix = "models--org--tiny/snapshots/";
  EXPECT_THAT(paths, ElementsAre(prefix + Rev("both") + "/model.safetensors",
                                 prefix + Rev("bin") + "/pytorch_model.bin",
                                 prefix + Rev("main") + "/model.safetensors.index.json"));
  v1::GetManifestResponse manifest;
  grpc::Status status = Manifest("org--tiny", 0, &manifest);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(manifest.version(), 3);
  ExpectTorchTensors(manifest, Expected()["models"]["org--tiny"]["1"]);
  server_.reset();
  fs::remove_all(copy);
}

// The index stays inside; one of the shards it names does not.
TEST_F(HfCacheTest, RefusesAShardLeavingTheRepository) {
  StartServer();
  v1::GetManifestResponse manifest;
  grpc::Status status = Manifest("org--shards", 1, &manifest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(),
              HasSubstr("model-00002-of-00002.safetensors: resolves outside the repository"));
}

TEST_F(HfCacheTest, FollowsSymlinksLeavingTheRepositoryWhenAllowed) {
  StartServer(/*follow_external_symlinks=*/true);
  for (const char* model : {"org--escape", "org--shards"}) {
    SCOPED_TRACE(model);
    v1::GetManifestResponse manifest;
    grpc::Status status = Manifest(model, 0, &manifest);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ExpectTorchTensors(manifest, Expected()["models"][model]["1"]);
  }
}

}  // namespace
}  // namespace weightd
