// Model lifecycle (unload, rescan, eviction, failures), health and
// reflection, through a real channel.

#include <thread>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

namespace fs = std::filesystem;

class LifecycleTest : public ServerTest {
 protected:
  v1::ModelVersion VersionOf(const std::string& model, int64_t version) {
    grpc::ClientContext context;
    v1::ListModelsResponse list;
    EXPECT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &list).ok());
    for (const v1::Model& m : list.models()) {
      for (const v1::ModelVersion& v : m.versions()) {
        if (m.name() == model && v.version() == version) return v;
      }
    }
    ADD_FAILURE() << model << " version " << version << " not listed";
    return {};
  }

  grpc::Status Manifest(const std::string& model, v1::GetManifestResponse* out,
                        int64_t version = 0) {
    grpc::ClientContext context;
    v1::GetManifestRequest request;
    request.set_model(model);
    request.set_version(version);
    return stub_->GetManifest(&context, request, out);
  }

  void WriteFile(const std::string& rel, const std::string& bytes) {
    fs::create_directories(fs::path(repo_ + "/" + rel).parent_path());
    std::ofstream(repo_ + "/" + rel, std::ios::binary) << bytes;
  }
};

TEST_F(LifecycleTest, UnloadDuringAStreamLetsTheStreamComplete) {
  StartServer();
  grpc::ClientContext context;
  v1::FetchRequest request;
  request.set_model("big");
  request.set_chunk_bytes(16 << 10);
  auto reader = stub_->Fetch(&context, request);
  v1::FetchResponse response;
  std::string bytes;
  ASSERT_TRUE(reader->Read(&response) && response.has_report());
  ASSERT_TRUE(reader->Read(&response) && response.has_header());
  ASSERT_TRUE(reader->Read(&response) && response.has_chunk());
  bytes += response.chunk().data();

  grpc::ClientContext admin_context;
  v1::UnloadModelRequest unload;
  unload.set_model("big");
  v1::UnloadModelResponse unloaded;
  ASSERT_TRUE(admin_->UnloadModel(&admin_context, unload, &unloaded).ok());
  EXPECT_EQ(VersionOf("big", 1).state(), v1::MODEL_STATE_UNLOADED);

  std::vector<std::string> tensors;
  while (reader->Read(&response)) {
    if (response.has_header()) {
      tensors.push_back(bytes);
      bytes.clear();
    } else {
      bytes += response.chunk().data();
    }
  }
  tensors.push_back(bytes);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(tensors.size(), 2);
  EXPECT_EQ(Xxh64(tensors[0]), Expected()["big"][0]["checksum"]);
  EXPECT_EQ(Xxh64(tensors[1]), Expected()["big"][1]["checksum"]);
}

TEST_F(LifecycleTest, ACancelledStreamStopsAndTheServerKeepsServing) {
  StartServer();
  {
    grpc::ClientContext context;
    v1::FetchRequest request;
    request.set_model("big");
    request.set_chunk_bytes(4 << 10);
    auto reader = stub_->Fetch(&context, request);
    v1::FetchResponse response;
    ASSERT_TRUE(reader->Read(&response) && response.has_report());
    context.TryCancel();
    while (reader->Read(&response)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1));
    v1::FetchRequest request;
    request.set_model("big");
    request.set_chunk_bytes(4 << 10);
    // Narrow window: the 4 MiB cannot all arrive before the deadline fires,
    // even when a busy machine delays gRPC's timer.
    std::unique_ptr<v1::WeightService::Stub> narrow = NarrowWindowStub(server_->port());
    auto reader = narrow->Fetch(&context, request);
    v1::FetchResponse response;
    while (reader->Read(&response)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  v1::FetchRequest request;
  request.set_model("lenet");
  EXPECT_TRUE(FetchAll(stub_.get(), request).status.ok());
}

TEST_F(LifecycleTest, ANewVersionAppearsAfterRescan) {
  StartServer();
  v1::GetManifestResponse manifest;
  ASSERT_TRUE(Manifest("lenet", &manifest).ok());
  EXPECT_EQ(manifest.version(), 1);
  fs::create_directories(repo_ + "/lenet/2");
  fs::copy(repo_ + "/embed.safetensors", repo_ + "/lenet/2/model.safetensors");

  grpc::ClientContext context;
  v1::RescanResponse rescanned;
  ASSERT_TRUE(admin_->Rescan(&context, v1::RescanRequest(), &rescanned).ok());
  ASSERT_TRUE(Manifest("lenet", &manifest).ok());
  EXPECT_EQ(manifest.version(), 2);
  EXPECT_EQ(manifest.format(), "safetensors");
  EXPECT_EQ(manifest.tensors(0).checksum(), Expected()["embed"][0]["checksum"]);
  // The old version still answers by number.
  ASSERT_TRUE(Manifest("lenet", &manifest, 1).ok());
  EXPECT_EQ(manifest.tensors(0).checksum(), Expected()["lenet"][0]["checksum"]);
}

TEST_F(LifecycleTest, ACorruptFileIsListedWithItsReasonWhileOthersServe) {
  WriteFile("broken/1/model.pt", "this is not a checkpoint at all");
  StartServer();
  v1::GetManifestResponse manifest;
  grpc::Status status = Manifest("broken", &manifest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
  v1::ModelVersion broken = VersionOf("broken", 1);
  EXPECT_EQ(broken.state(), v1::MODEL_STATE_FAILED);
  EXPECT_THAT(broken.reason(), HasSubstr("model.pt"));
  EXPECT_TRUE(Manifest("lenet", &manifest).ok());
}

TEST_F(LifecycleTest, AFailedNewVersionLeavesThePreviousOneServing) {
  WriteFile("lenet/2/model.pt", "garbage");
  StartServer();
  v1::GetManifestResponse manifest;
  ASSERT_TRUE(Manifest("lenet", &manifest).ok());
  EXPECT_EQ(manifest.version(), 1);
  EXPECT_EQ(VersionOf("lenet", 2).state(), v1::MODEL_STATE_FAILED);
}

TEST_F(LifecycleTest, TheLeastRecentlyUsedModelIsEvictedUnderABudget) {
  uint64_t bytes = 0;
  for (const auto& t : Expected()["lenet"]) bytes += t["nbytes"].get<uint64_t>();
  StartServer(/*host_cache_bytes=*/bytes + 1);  // room for one LeNet, not two
  v1::GetManifestResponse manifest;
  ASSERT_TRUE(Manifest("lenet", &manifest).ok());
  EXPECT_EQ(VersionOf("lenet", 1).state(), v1::MODEL_STATE_READY);
  ASSERT_TRUE(Manifest("trainer", &manifest).ok());
  EXPECT_EQ(VersionOf("trainer", 1).state(), v1::MODEL_STATE_READY);
  EXPECT_EQ(VersionOf("lenet", 1).state(), v1::MODEL_STATE_UNLOADED);
  // An evicted model reloads on demand.
  ASSERT_TRUE(Manifest("lenet", &manifest).ok());
  EXPECT_EQ(VersionOf("lenet", 1).state(), v1::MODEL_STATE_READY);
  EXPECT_EQ(VersionOf("trainer", 1).state(), v1::MODEL_STATE_UNLOADED);
}

TEST_F(LifecycleTest, HealthCheckCoversTheServerAndEachModel) {
  WriteFile("broken/1/model.pt", "not a checkpoint");
  StartServer();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  auto check = [&](const std::string& service, HealthCheckResponse* out) {
    grpc::ClientContext context;
    HealthCheckRequest request;
    request.set_service(service);
    return health->Check(&context, request, out);
  };
  HealthCheckResponse response;
  ASSERT_TRUE(check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(check("weightd.v1.WeightService/lenet", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  EXPECT_EQ(check("weightd.v1.WeightService/nope", &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::GetManifestResponse manifest;
  EXPECT_FALSE(Manifest("broken", &manifest).ok());
  ASSERT_TRUE(check("weightd.v1.WeightService/broken", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(LifecycleTest, HealthWatchSeesNotServingWhenShutdownBegins) {
  StartServer();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  auto reader = health->Watch(&context, HealthCheckRequest());
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  std::thread stopper([&] { server_->Shutdown(absl::Seconds(5)); });
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&response));
  reader->Finish().IgnoreError();
  stopper.join();
}

TEST_F(LifecycleTest, ReflectionListsTheServicesAndDescribesHealth) {
  StartServer();
  std::vector<std::string> services = ReflectedServices(channel_.get());
  EXPECT_THAT(services, Contains("weightd.v1.WeightService"));
  EXPECT_THAT(services, Contains("weightd.v1.AdminService"));
  EXPECT_THAT(services, Contains("grpc.health.v1.Health"));
  EXPECT_THAT(services, Contains("grpc.reflection.v1alpha.ServerReflection"));
  EXPECT_TRUE(ReflectionDescribes(channel_.get(), "grpc.health.v1.Health"))
      << "reflection cannot describe grpc.health.v1.Health";
}

}  // namespace
}  // namespace weightd::testing
