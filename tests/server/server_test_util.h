// Shared helpers of the server tests: a copy of the generated repository, a
// real server on 127.0.0.1:0 and real channels to it.
#ifndef WEIGHTD_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define WEIGHTD_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <grpcpp/grpcpp.h>
#include <unistd.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/weight_server.h"
#include "weightd/v1/weightd.grpc.pb.h"

namespace weightd::testing {

// Written at build time by make_test_repository.py (see CMakeLists.txt).
inline std::string TestDataDir() { return WEIGHTD_SERVER_TEST_DATA; }

inline const nlohmann::json& Expected() {
  static const nlohmann::json* expected = [] {
    std::ifstream in(TestDataDir() + "/expected.json");
    return new nlohmann::json(nlohmann::json::parse(in));
  }();
  return *expected;
}

inline std::string Hex(uint64_t value) { return absl::StrCat(absl::Hex(value, absl::kZeroPad16)); }
inline std::string Xxh64(const std::string& bytes) {
  return Hex(XXH64(bytes.data(), bytes.size(), 0));
}

// A stub whose HTTP/2 stream window stays at 64 KiB (no BDP probing): a
// stream the test stops reading stays open on the server however fast the
// server is, instead of the whole model fitting into a widened window.
inline std::unique_ptr<v1::WeightService::Stub> NarrowWindowStub(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  return v1::WeightService::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args));
}

// A private copy of the repository (tests change it) and a server over it.
class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    repo_ = absl::StrCat(::testing::TempDir(), "/weightd_", info->name(), "_", getpid());
    std::filesystem::remove_all(repo_);
    std::filesystem::copy(TestDataDir() + "/repo", repo_,
                          std::filesystem::copy_options::recursive);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(repo_);
  }

  void StartServer(uint64_t host_cache_bytes = 0) {
    ServerOptions options;
    options.repository = repo_;
    options.listen = "127.0.0.1:0";
    options.host_cache_bytes = host_cache_bytes;
    absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::WeightService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  std::string repo_;
  std::unique_ptr<WeightServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WeightService::Stub> stub_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

struct FetchedTensor {
  v1::TensorHeader header;
  std::string bytes;
};

struct FetchResult {
  grpc::Status status;
  v1::MatchReport report;
  std::vector<FetchedTensor> tensors;
};

// Reads a whole Fetch stream, checking its order: the report first, then a
// header per tensor followed by chunks with consecutive offsets.
inline FetchResult FetchAll(v1::WeightService::Stub* stub, const v1::FetchRequest& request) {
  FetchResult result;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  std::unique_ptr<grpc::ClientReader<v1::FetchResponse>> reader = stub->Fetch(&context, request);
  v1::FetchResponse response;
  bool first = true;
  while (reader->Read(&response)) {
    if (first) {
      EXPECT_TRUE(response.has_report()) << "the report comes first";
      result.report = response.report();
      first = false;
      continue;
    }
    if (response.has_header()) {
      EXPECT_EQ(response.header().index(), result.tensors.size());
      result.tensors.push_back({response.header(), ""});
    } else if (response.has_chunk()) {
      EXPECT_FALSE(result.tensors.empty());
      if (result.tensors.empty()) continue;
      EXPECT_EQ(response.chunk().index(), result.tensors.size() - 1);
      EXPECT_EQ(response.chunk().offset(), result.tensors.back().bytes.size());
      result.tensors.back().bytes += response.chunk().data();
    } else {
      ADD_FAILURE() << "unexpected message " << response.ShortDebugString();
    }
  }
  result.status = reader->Finish();
  return result;
}

}  // namespace weightd::testing

#endif  // WEIGHTD_TESTS_SERVER_SERVER_TEST_UTIL_H_
