// The weightd binary on a machine without a usable GPU (the development and
// CI machines: CUDA toolkit, no driver): a cache_tier: "cuda:0" model is
// served from host memory, ListModels and the log say why, and the bytes
// are Python's. Skipped where a device is present (gpu_cuda_test covers it).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/gpu/device_backend.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;

TEST(GpuDaemonTest, ACudaModelWithoutADeviceIsServedFromHostWithTheReason) {
  absl::StatusOr<int> devices = CudaBackend()->DeviceCount();
  if (devices.ok()) GTEST_SKIP() << *devices << " CUDA device(s) present";
  const std::string dir = absl::StrCat(::testing::TempDir(), "/weightd_gpu_daemon_", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy(TestDataDir() + "/repo", dir + "/repo",
                        std::filesystem::copy_options::recursive);
  std::ofstream(dir + "/repo/big/model.pbtxt") << "cache_tier: \"cuda:0\"\npreload: true\n";
  const std::string log = dir + "/stderr";

  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    freopen(log.c_str(), "w", stderr);
    close(out[0]);
    const std::string repository = dir + "/repo";
    execl(WEIGHTD_BINARY, "weightd", "--repository", repository.c_str(), "--listen", "127.0.0.1:0",
          "--logtostderr", "--drain_seconds", "1", nullptr);
    _exit(127);
  }
  close(out[1]);
  FILE* stdout_of = fdopen(out[0], "r");
  char line[256] = {};
  ASSERT_NE(fgets(line, sizeof(line), stdout_of), nullptr);
  const std::string first(line);
  ASSERT_THAT(first, HasSubstr("listening on 127.0.0.1:"));
  const int port = std::stoi(first.substr(first.rfind(':') + 1));

  auto stub = v1::WeightService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub->ListModels(&context, v1::ListModelsRequest(), &list).ok());
  const v1::ModelVersion* big = nullptr;
  for (const v1::Model& m : list.models()) {
    if (m.name() == "big") big = &m.versions(0);
  }
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->state(), v1::MODEL_STATE_READY);  // preloaded
  EXPECT_EQ(big->cache_tier(), "host");
  EXPECT_THAT(big->cache_note(), HasSubstr("cache_tier \"cuda:0\" not in effect: "));
  EXPECT_THAT(big->cache_note(),
              HasSubstr(BuiltWithCuda() ? "cudaGetDeviceCount" : "built without CUDA"));

  v1::FetchRequest request;
  request.set_model("big");
  FetchResult result = FetchAll(stub.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  const auto& expected = Expected()["big"];
  ASSERT_EQ(result.tensors.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(Xxh64(result.tensors[i].bytes), expected[i]["checksum"]);
    EXPECT_EQ(result.tensors[i].header.checksum(), expected[i]["checksum"]);
  }

  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  fclose(stdout_of);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::stringstream text;
  text << std::ifstream(log).rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("model \"big\" version 1: cache_tier \"cuda:0\" not in "
                                    "effect"));
  EXPECT_THAT(text.str(), HasSubstr("GPU tier off: "));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weightd::testing
