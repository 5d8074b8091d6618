// Shared helpers of the client tests: a real server on 127.0.0.1:0 over the
// repository make_client_repository.py wrote, and LibTorch modules that
// mirror the Python ones.
#ifndef WEIGHTD_TESTS_CLIENT_CLIENT_TEST_UTIL_H_
#define WEIGHTD_TESTS_CLIENT_CLIENT_TEST_UTIL_H_

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <xxhash.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include <weightd/client.h>
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/weight_server.h"

namespace weightd::testing {

inline std::string TestDataDir() { return WEIGHTD_CLIENT_TEST_DATA; }

inline const nlohmann::json& Expected() {
  static const nlohmann::json* expected = [] {
    std::ifstream in(TestDataDir() + "/expected.json");
    return new nlohmann::json(nlohmann::json::parse(in));
  }();
  return *expected;
}

// The LeNet of tests/server/make_test_repository.py, with `classes` outputs.
struct LeNetImpl : torch::nn::Module {
  explicit LeNetImpl(int64_t classes = 10)
      : conv1(register_module("conv1", torch::nn::Conv2d(1, 6, 5))),
        conv2(register_module("conv2", torch::nn::Conv2d(6, 16, 5))),
        fc1(register_module("fc1", torch::nn::Linear(16 * 5 * 5, 120))),
        fc2(register_module("fc2", torch::nn::Linear(120, 84))),
        fc3(register_module("fc3", torch::nn::Linear(84, classes))),
        bn(register_module("bn", torch::nn::BatchNorm1d(classes))) {}
  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc1, fc2, fc3;
  torch::nn::BatchNorm1d bn;
};
TORCH_MODULE(LeNet);

inline std::string Checksum(const torch::Tensor& t) {
  torch::Tensor c = t.cpu().contiguous();
  return absl::StrCat(absl::Hex(XXH64(c.data_ptr(), c.nbytes(), 0), absl::kZeroPad16));
}

// name -> checksum of every parameter and buffer.
// A module of two float vectors, "a" and "b", as in the "nan" model.
struct TwoVectors : torch::nn::Module {
  explicit TwoVectors(torch::Device device = torch::kCPU) {
    a = register_parameter("a", torch::zeros({4}, device));
    b = register_parameter("b", torch::zeros({4}, device));
  }
  torch::Tensor a, b;
};

// The "big" model: four 1024 x 2048 float32 parameters.
struct FourMatrices : torch::nn::Module {
  FourMatrices() {
    for (const char* name : {"a", "b", "c", "d"}) {
      register_parameter(name, torch::zeros({1024, 2048}));
    }
  }
};

inline std::map<std::string, std::string> Checksums(const torch::nn::Module& module) {
  std::map<std::string, std::string> out;
  for (const auto& p : module.named_parameters()) out[p.key()] = Checksum(p.value());
  for (const auto& b : module.named_buffers()) out[b.key()] = Checksum(b.value());
  return out;
}

inline std::map<std::string, std::string> ExpectedChecksums(const std::string& which) {
  return Expected().at(which).get<std::map<std::string, std::string>>();
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  void StartServer(const std::string& listen = "127.0.0.1:0") {
    ServerOptions options;
    options.repository = TestDataDir() + "/repo";
    options.listen = listen;
    absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ClientOptions client_options;
    client_options.target = absl::StrCat("127.0.0.1:", server_->port());
    client_ = std::make_unique<Client>(client_options);
  }

  std::unique_ptr<WeightServer> server_;
  std::unique_ptr<Client> client_;
};

}  // namespace weightd::testing

#endif  // WEIGHTD_TESTS_CLIENT_CLIENT_TEST_UTIL_H_
