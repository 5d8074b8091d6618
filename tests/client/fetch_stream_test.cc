// The client's reading of a Fetch stream whose checksums come as trailers
// (FetchRequest.checksum_trailer), and of one from a server older than that
// field. The real weightd never breaks the stream's contract, so a scripted
// server (a real gRPC server on port 0 that sends what each test says)
// stands in for the broken ones.
#include <grpcpp/grpcpp.h>
#include <xxhash.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client_core.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weightd/v1/weightd.grpc.pb.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kBytes[] = "0123456789abcdef";  // one float32 [4]

std::string Hex(uint64_t value) { return absl::StrCat(absl::Hex(value, absl::kZeroPad16)); }
std::string Checksum() { return Hex(XXH64(kBytes, 16, 0)); }

// Sends `script` as the Fetch stream of one float32 [4] tensor "w" (its
// report first), and records whether the request asked for trailers.
class ScriptedService final : public v1::WeightService::Service {
 public:
  explicit ScriptedService(std::vector<v1::FetchResponse> script) : script_(std::move(script)) {}

  grpc::Status Fetch(grpc::ServerContext*, const v1::FetchRequest* request,
                     grpc::ServerWriter<v1::FetchResponse>* writer) override {
    asked_for_trailer_ = request->checksum_trailer();
    v1::FetchResponse report;
    v1::MatchedTensor* m = report.mutable_report()->add_matched();
    m->set_source("w");
    m->set_target("w");
    m->add_shape(4);
    m->set_source_dtype("float32");
    m->set_target_dtype("float32");
    m->set_nbytes(16);
    report.mutable_report()->set_bytes(16);
    report.mutable_report()->set_ok(true);
    writer->Write(report);
    for (const v1::FetchResponse& r : script_) writer->Write(r);
    return grpc::Status::OK;
  }

  bool asked_for_trailer() const { return asked_for_trailer_; }

 private:
  const std::vector<v1::FetchResponse> script_;
  bool asked_for_trailer_ = false;
};

v1::FetchResponse Header(const std::string& checksum, uint32_t index = 0) {
  v1::FetchResponse r;
  v1::TensorHeader* h = r.mutable_header();
  h->set_index(index);
  h->set_name("w");
  h->set_source("w");
  h->set_dtype("float32");
  h->add_shape(4);
  h->set_nbytes(16);
  h->set_checksum(checksum);
  return r;
}

v1::FetchResponse Chunk(uint32_t index = 0) {
  v1::FetchResponse r;
  r.mutable_chunk()->set_index(index);
  r.mutable_chunk()->set_data(kBytes, 16);
  return r;
}

v1::FetchResponse Trailer(const std::string& checksum, uint32_t index = 0) {
  v1::FetchResponse r;
  r.mutable_trailer()->set_index(index);
  r.mutable_trailer()->set_checksum(checksum);
  return r;
}

struct Outcome {
  absl::StatusOr<StateDict> fetched;
  bool asked_for_trailer = false;
};

Outcome FetchFrom(std::vector<v1::FetchResponse> script) {
  ScriptedService service(std::move(script));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  EXPECT_NE(port, 0);
  ClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", port);
  ClientCore client(options);
  Outcome out{client.FetchHost("m"), false};
  server->Shutdown();
  out.asked_for_trailer = service.asked_for_trailer();
  return out;
}

std::string BytesOf(const StateDict& sd) {
  const TensorRecord& t = sd.at(0).second;
  return std::string(reinterpret_cast<const char*>(t.data()), t.nbytes());
}

TEST(FetchStreamTest, AsksForTrailersAndChecksTheTrailerAfterTheBytes) {
  Outcome out = FetchFrom({Header(""), Chunk(), Trailer(Checksum())});
  EXPECT_TRUE(out.asked_for_trailer);
  ASSERT_TRUE(out.fetched.ok()) << out.fetched.status();
  ASSERT_EQ(out.fetched->size(), 1);
  EXPECT_EQ(BytesOf(*out.fetched), std::string(kBytes, 16));
}

TEST(FetchStreamTest, TakesHeaderChecksumsFromAServerWithoutTrailers) {
  Outcome out = FetchFrom({Header(Checksum()), Chunk()});
  ASSERT_TRUE(out.fetched.ok()) << out.fetched.status();
  EXPECT_EQ(BytesOf(*out.fetched), std::string(kBytes, 16));
}

TEST(FetchStreamTest, AWrongTrailerIsDataLoss) {
  Outcome out = FetchFrom({Header(""), Chunk(), Trailer(Hex(1))});
  EXPECT_EQ(out.fetched.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(out.fetched.status().message(), HasSubstr("the server's trailer says"));
}

TEST(FetchStreamTest, AStreamEndingBeforeTheTrailerIsDataLoss) {
  Outcome out = FetchFrom({Header(""), Chunk()});
  EXPECT_EQ(out.fetched.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(out.fetched.status().message(), HasSubstr("before the tensor's checksum trailer"));
}

TEST(FetchStreamTest, ANextHeaderInPlaceOfTheTrailerIsDataLoss) {
  Outcome out = FetchFrom({Header(""), Chunk(), Header("", 1)});
  EXPECT_EQ(out.fetched.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(out.fetched.status().message(), HasSubstr("no checksum trailer followed"));
}

TEST(FetchStreamTest, ATrailerAfterAHeaderChecksumIsDataLoss) {
  Outcome out = FetchFrom({Header(Checksum()), Chunk(), Trailer(Checksum())});
  EXPECT_EQ(out.fetched.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(out.fetched.status().message(), HasSubstr("no tensor awaits"));
}

}  // namespace
}  // namespace weightd::testing
