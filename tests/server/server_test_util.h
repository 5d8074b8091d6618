// Shared helpers of the server tests: a copy of the generated repository, a
// real server on 127.0.0.1:0 and real channels to it.
#ifndef WEIGHTD_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define WEIGHTD_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>
#include <unistd.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
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
    options.host_cache_bytes = host_cache_bytes;
    StartServerWith(std::move(options));
  }

  // Starts the server with `options`, on this test's repository copy and a
  // loopback port (both set here), and makes the stubs.
  void StartServerWith(ServerOptions options) {
    options.repository = repo_;
    options.listen = "127.0.0.1:0";
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
  std::optional<std::string> trailer;  // TensorTrailer.checksum, if one came
};

struct FetchResult {
  grpc::Status status;
  v1::MatchReport report;
  std::vector<FetchedTensor> tensors;
};

// Reads a whole Fetch stream, checking its order: the report first, then a
// header per tensor followed by chunks with consecutive offsets and, only if
// the header had no checksum, a trailer after all of its bytes.
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
    } else if (response.has_trailer()) {
      EXPECT_FALSE(result.tensors.empty());
      if (result.tensors.empty()) continue;
      FetchedTensor& t = result.tensors.back();
      EXPECT_EQ(response.trailer().index(), result.tensors.size() - 1);
      EXPECT_FALSE(t.trailer.has_value()) << "one trailer per tensor";
      EXPECT_EQ(t.bytes.size(), t.header.nbytes()) << "the trailer follows the last chunk";
      EXPECT_EQ(t.header.checksum(), "") << "a trailer only when the header has no checksum";
      t.trailer = response.trailer().checksum();
    } else if (response.has_chunk()) {
      EXPECT_FALSE(result.tensors.empty());
      if (result.tensors.empty()) continue;
      EXPECT_FALSE(result.tensors.back().trailer.has_value()) << "a chunk after the trailer";
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

// grpc.reflection.v1alpha by hand (Debian ships no reflection client):
// ServerReflectionRequest.list_services = 7, .file_containing_symbol = 4;
// ServerReflectionResponse.file_descriptor_response = 4,
// .list_services_response = 6 { service = 1 { name = 1 } }, .error_response = 7.
inline std::string LengthDelimited(int field, const std::string& value) {
  std::string out(1, static_cast<char>((field << 3) | 2));
  out.push_back(static_cast<char>(value.size()));  // < 128 here
  return out + value;
}

// One ServerReflectionInfo exchange: `request` out, the reply's bytes back.
inline std::string Reflect(grpc::Channel* channel, const std::string& request) {
  grpc::ClientContext context;
  auto stream = std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel,
          grpc::internal::RpcMethod(
              "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
              grpc::internal::RpcMethod::BIDI_STREAMING),
          &context));
  grpc::Slice slice(request);
  EXPECT_TRUE(stream->Write(grpc::ByteBuffer(&slice, 1)));
  stream->WritesDone();
  grpc::ByteBuffer reply;
  EXPECT_TRUE(stream->Read(&reply));
  EXPECT_TRUE(stream->Finish().ok());
  std::vector<grpc::Slice> slices;
  reply.Dump(&slices).IgnoreError();
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes;
}

// The service names reflection lists on `channel`'s server.
inline std::vector<std::string> ReflectedServices(grpc::Channel* channel) {
  google::protobuf::UnknownFieldSet reply;
  EXPECT_TRUE(reply.ParseFromString(Reflect(channel, LengthDelimited(7, "*"))));
  std::vector<std::string> services;
  for (int i = 0; i < reply.field_count(); ++i) {
    if (reply.field(i).number() != 6) continue;
    google::protobuf::UnknownFieldSet list;
    EXPECT_TRUE(list.ParseFromString(reply.field(i).length_delimited()));
    for (int j = 0; j < list.field_count(); ++j) {
      google::protobuf::UnknownFieldSet service;
      EXPECT_TRUE(service.ParseFromString(list.field(j).length_delimited()));
      services.push_back(service.field(0).length_delimited());
    }
  }
  return services;
}

// Whether reflection answers a file descriptor for `symbol` (what grpcurl
// needs before it can call a method of it).
inline bool ReflectionDescribes(grpc::Channel* channel, const std::string& symbol) {
  google::protobuf::UnknownFieldSet reply;
  EXPECT_TRUE(reply.ParseFromString(Reflect(channel, LengthDelimited(4, symbol))));
  bool described = false;
  for (int i = 0; i < reply.field_count(); ++i) described |= reply.field(i).number() == 4;
  return described;
}

}  // namespace weightd::testing


#endif  // WEIGHTD_TESTS_SERVER_SERVER_TEST_UTIL_H_
