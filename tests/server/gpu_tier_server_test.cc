// cache_tier: "cuda:0" through a real server and real channels: residency,
// Fetch through the staging path, fallback to host with the reason,
// eviction while a stream holds its snapshot. Built twice: on emulated
// devices (server/gpu/host_backend.h; runs everywhere), and as
// gpu_tier_server_cuda_test (WEIGHTD_TEST_CUDA: the CUDA runtime, CTest
// label gpu; skips without a device). Checks of the emulated backend's
// counters run in the first only.
#include <filesystem>
#include <fstream>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/gpu/host_backend.h"
#include "server/metrics/weightd_metrics.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

class GpuTierServerTest : public ServerTest {
 protected:
  void SetCacheTier(const std::string& model, const std::string& tier) {
    std::ofstream(repo_ + "/" + model + "/model.pbtxt") << "cache_tier: \"" << tier << "\"\n";
  }

  void SetUp() override {
    ServerTest::SetUp();
#ifdef WEIGHTD_TEST_CUDA
    absl::StatusOr<int> devices = CudaBackend()->DeviceCount();
    if (!devices.ok()) GTEST_SKIP() << "no CUDA device: " << devices.status().message();
#endif
  }

  void Start(uint64_t gpu_cache_bytes = 0, bool from_device = true,
             const std::string& model_config_dir = "") {
#ifndef WEIGHTD_TEST_CUDA
    backend_ = std::make_shared<HostBackend>();
#endif
    ServerOptions options;
    options.gpu_backend = backend_;
    options.gpu_cache_bytes = gpu_cache_bytes;
    options.gpu_fetch_from_device = from_device;
    options.model_config_dir = model_config_dir;
    StartServerWith(std::move(options));
  }

  v1::ModelVersion Version(const std::string& model) {
    grpc::ClientContext context;
    v1::ListModelsResponse list;
    EXPECT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &list).ok());
    for (const v1::Model& m : list.models()) {
      if (m.name() == model && m.versions_size() > 0) return m.versions(0);
    }
    ADD_FAILURE() << "no model " << model;
    return {};
  }

  // Fetches `model` whole and checks every tensor against what Python wrote.
  void FetchAndCheck(const std::string& model, uint32_t chunk_bytes = 64 << 10) {
    v1::FetchRequest request;
    request.set_model(model);
    request.set_chunk_bytes(chunk_bytes);
    FetchResult result = FetchAll(stub_.get(), request);
    ASSERT_TRUE(result.status.ok()) << model << ": " << result.status.error_message();
    CheckTensors(model, result);
  }

  static void CheckTensors(const std::string& model, const FetchResult& result) {
    const auto& expected = Expected()[model];
    ASSERT_EQ(result.tensors.size(), expected.size()) << model;
    for (size_t i = 0; i < expected.size(); ++i) {
      const FetchedTensor& t = result.tensors[i];
      EXPECT_EQ(t.header.name(), expected[i]["name"]);
      EXPECT_EQ(t.header.nbytes(), t.bytes.size());
      EXPECT_EQ(t.header.checksum(), Xxh64(t.bytes)) << t.header.name();
      EXPECT_EQ(Xxh64(t.bytes), expected[i]["checksum"]) << t.header.name();
    }
  }

  // Null with the CUDA runtime (the server's default backend).
  std::shared_ptr<HostBackend> backend_;
};

TEST_F(GpuTierServerTest, AResidentModelIsFetchedFromTheDeviceWithThePythonBytes) {
  SetCacheTier("big", "cuda:0");
  SetCacheTier("lenet", "cuda");
  Start();
  for (const std::string model : {"big", "lenet"}) {
    const int copies = backend_ ? backend_->copies_started() : 0;
    FetchAndCheck(model);
    if (backend_) {
      EXPECT_GT(backend_->copies_started(), copies) << model << " was not read from the device";
    }
    v1::ModelVersion version = Version(model);
    EXPECT_EQ(version.cache_tier(), "cuda:0") << model;
    EXPECT_THAT(version.cache_note(), IsEmpty());
  }
  const std::string scrape = server_->metrics().Render();
  EXPECT_THAT(scrape, HasSubstr("weightd_cache_bytes{tier=\"cuda:0\"} "));
  EXPECT_GT(server_->metrics().Value(metrics::kCacheBytes, {{"tier", "cuda:0"}}), 4 << 20);
  // The staging buffers came back from gRPC (slice destroy callbacks).
  if (backend_) {
    EXPECT_GT(backend_->pinned_allocated_total(), 0);
  }
  if (backend_) {
    EXPECT_LE(backend_->pinned_allocated_total(), 4);
  }
}

TEST_F(GpuTierServerTest, ViewsAndMixedDtypesComeFromTheDeviceRowMajor) {
  // ddp.pt is a bare file: its config comes from a config directory.
  const std::string configs = repo_ + "_configs";
  std::filesystem::create_directories(configs);
  std::ofstream(configs + "/ddp.pbtxt") << "cache_tier: \"cuda:0\"\n";
  Start(0, true, configs);
  FetchAndCheck("ddp");
  EXPECT_EQ(Version("ddp").cache_tier(), "cuda:0");
  std::filesystem::remove_all(configs);
}

TEST_F(GpuTierServerTest, ACastFetchMixesDeviceAndHostTensorsAndMatchesTheHostPath) {
  SetCacheTier("lenet", "cuda:0");
  v1::FetchRequest request;
  request.set_model("lenet");
  request.set_cast_dtype("float32");
  FetchResult results[2];
  for (bool from_device : {false, true}) {
    Start(0, from_device);
    results[from_device] = FetchAll(stub_.get(), request);
    ASSERT_TRUE(results[from_device].status.ok()) << results[from_device].status.error_message();
  }
  ASSERT_EQ(results[0].tensors.size(), results[1].tensors.size());
  // bn's int64 counter is cast on the host copy; the float32 tensors need
  // no cast and come from the device.
  std::set<std::string> dtypes;
  for (const FetchedTensor& t : results[1].tensors) dtypes.insert(t.header.dtype());
  EXPECT_EQ(dtypes, (std::set<std::string>{"float32"}));
  if (backend_) {
    EXPECT_GT(backend_->copies_started(), 0);
  }
  for (size_t i = 0; i < results[0].tensors.size(); ++i) {
    EXPECT_EQ(results[0].tensors[i].bytes, results[1].tensors[i].bytes);
    EXPECT_EQ(results[0].tensors[i].header.checksum(), results[1].tensors[i].header.checksum());
  }
}

TEST_F(GpuTierServerTest, LargeChunksAreStagedToo) {
  SetCacheTier("big", "cuda:0");
  Start();
  FetchAndCheck("big", 4 << 20);
}

TEST_F(GpuTierServerTest, FetchSourceHostReadsTheMmapOfAResidentModel) {
  SetCacheTier("big", "cuda:0");
  Start(0, /*from_device=*/false);
  FetchAndCheck("big");
  if (backend_) {
    EXPECT_EQ(backend_->copies_started(), 0);
  }
  EXPECT_EQ(Version("big").cache_tier(), "cuda:0");
}

TEST_F(GpuTierServerTest, AModelOverTheBudgetIsServedFromHostAndSaysWhy) {
  SetCacheTier("big", "cuda:0");
  Start(/*gpu_cache_bytes=*/1 << 20);
  FetchAndCheck("big");
  if (backend_) {
    EXPECT_EQ(backend_->copies_started(), 0);
  }
  v1::ModelVersion version = Version("big");
  EXPECT_EQ(version.cache_tier(), "host");
  EXPECT_THAT(version.cache_note(), HasSubstr("cache_tier \"cuda:0\" not in effect"));
  EXPECT_THAT(version.cache_note(), HasSubstr("more than its budget"));
  if (backend_) {
    EXPECT_EQ(backend_->live_allocations(), 0);
  }
}

TEST_F(GpuTierServerTest, ADeviceThatDoesNotExistIsServedFromHostAndNamed) {
  SetCacheTier("lenet", "cuda:999");
  Start();
  FetchAndCheck("lenet");
  EXPECT_EQ(Version("lenet").cache_tier(), "host");
  EXPECT_THAT(Version("lenet").cache_note(), HasSubstr("cuda:999 does not exist: "));
  if (backend_) {
    EXPECT_THAT(Version("lenet").cache_note(), HasSubstr("1 device visible"));
  }
}

TEST_F(GpuTierServerTest, AnUnknownTierIsServedFromHostAndNamed) {
  SetCacheTier("lenet", "gpu0");
  Start();
  FetchAndCheck("lenet");
  EXPECT_EQ(Version("lenet").cache_tier(), "host");
  EXPECT_THAT(Version("lenet").cache_note(), HasSubstr("\"gpu0\" is not"));
}

TEST_F(GpuTierServerTest, EvictionWaitsForTheStreamThatHoldsTheSnapshot) {
  SetCacheTier("big", "cuda:0");
  SetCacheTier("lenet", "cuda:0");
  // Room for big (4 MiB) or lenet, not both.
  Start(/*gpu_cache_bytes=*/(4 << 20) + (64 << 10));
  // A stream of big that stays open: the narrow window stops the server
  // after the first few chunks.
  std::unique_ptr<v1::WeightService::Stub> narrow = NarrowWindowStub(server_->port());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::FetchRequest request;
  request.set_model("big");
  request.set_chunk_bytes(64 << 10);
  auto reader = narrow->Fetch(&context, request);
  v1::FetchResponse response;
  ASSERT_TRUE(reader->Read(&response));  // the report: big is loaded and resident
  ASSERT_EQ(Version("big").cache_tier(), "cuda:0");

  // lenet cannot evict big while the stream reads it: host, with the reason.
  FetchAndCheck("lenet");
  EXPECT_EQ(Version("lenet").cache_tier(), "host");
  EXPECT_THAT(Version("lenet").cache_note(), HasSubstr("held by models in use"));
  EXPECT_EQ(Version("big").cache_tier(), "cuda:0");

  // The stream ends with every byte of big.
  FetchResult big;
  big.report = response.report();
  while (reader->Read(&response)) {
    if (response.has_header()) big.tensors.push_back({response.header(), ""});
    if (response.has_chunk()) big.tensors.back().bytes += response.chunk().data();
  }
  ASSERT_TRUE(reader->Finish().ok());
  CheckTensors("big", big);

  // Now nothing holds big: lenet's next Fetch uploads it, evicting big.
  const int copies = backend_ ? backend_->copies_started() : 0;
  FetchAndCheck("lenet");
  if (backend_) {
    EXPECT_GT(backend_->copies_started(), copies);
  }
  EXPECT_EQ(Version("lenet").cache_tier(), "cuda:0");
  EXPECT_EQ(Version("big").cache_tier(), "host");
  EXPECT_THAT(Version("big").cache_note(), HasSubstr("evicted from cuda:0"));
  EXPECT_EQ(server_->metrics().Value(metrics::kCacheEvictions, {{"tier", "cuda:0"}}), 1);
  // ... and big comes back on its next Fetch, evicting lenet in turn.
  FetchAndCheck("big");
  EXPECT_EQ(Version("big").cache_tier(), "cuda:0");
  EXPECT_EQ(Version("lenet").cache_tier(), "host");
}

TEST_F(GpuTierServerTest, UnloadFreesTheDeviceMemory) {
  SetCacheTier("big", "cuda:0");
  Start();
  FetchAndCheck("big");
  if (backend_) {
    EXPECT_EQ(backend_->live_allocations(), 1);
  }
  grpc::ClientContext context;
  v1::UnloadModelRequest unload;
  unload.set_model("big");
  v1::UnloadModelResponse unloaded;
  ASSERT_TRUE(admin_->UnloadModel(&context, unload, &unloaded).ok());
  if (backend_) {
    EXPECT_EQ(backend_->live_allocations(), 0);
  }
  EXPECT_EQ(server_->store().gpu_tier().Usage()[0].allocated_bytes, 0u);
  FetchAndCheck("big");  // loads and uploads again
  EXPECT_EQ(Version("big").cache_tier(), "cuda:0");
}

}  // namespace
}  // namespace weightd::testing
