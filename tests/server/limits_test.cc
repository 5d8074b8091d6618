// Server limits: each over-limit request gets RESOURCE_EXHAUSTED or
// INVALID_ARGUMENT with a message that says which limit.
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;

class LimitsTest : public ServerTest {
 protected:
  void Start(const ServerOptions& base) { StartServerWith(base); }

  grpc::Status Match(const v1::MatchRequest& request) {
    grpc::ClientContext context;
    v1::MatchReport report;
    return stub_->Match(&context, request, &report);
  }
};

TEST_F(LimitsTest, TooManyTargetEntriesIsInvalidArgument) {
  ServerOptions options;
  options.request_limits.max_target_entries = 3;
  Start(options);
  v1::MatchRequest request;
  request.set_model("lenet");
  for (int i = 0; i < 4; ++i) request.add_target()->set_name(absl::StrCat("t", i));
  grpc::Status status = Match(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("limit of 3"));
}

TEST_F(LimitsTest, TooManyFetchKeysIsInvalidArgument) {
  ServerOptions options;
  options.request_limits.max_target_entries = 1;
  Start(options);
  v1::FetchRequest request;
  request.set_model("lenet");
  request.add_keys("conv1.weight");
  request.add_keys("conv1.bias");
  EXPECT_EQ(FetchAll(stub_.get(), request).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(LimitsTest, TooManyRulesIsInvalidArgument) {
  ServerOptions options;
  options.request_limits.max_rules = 2;
  Start(options);
  v1::MatchRequest request;
  request.set_model("lenet");
  request.mutable_rules()->add_rules()->set_strip_prefix("a.");
  request.mutable_rules()->add_include("x");
  request.mutable_rules()->add_exclude("y");
  grpc::Status status = Match(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("rules"));
}

TEST_F(LimitsTest, AnOverlongPatternIsInvalidArgument) {
  ServerOptions options;
  options.request_limits.max_pattern_bytes = 16;
  Start(options);
  v1::MatchRequest request;
  request.set_model("lenet");
  request.mutable_rules()->add_rules()->mutable_regex()->set_pattern(std::string(17, 'a'));
  EXPECT_EQ(Match(request).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(LimitsTest, ARequestOverMaxRequestBytesIsResourceExhausted) {
  ServerOptions options;
  options.max_request_bytes = 1024;
  Start(options);
  v1::MatchRequest request;
  request.set_model("lenet");
  request.add_target()->set_name(std::string(4096, 'n'));
  EXPECT_EQ(Match(request).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(LimitsTest, FetchesPastMaxActiveFetchesAreResourceExhausted) {
  ServerOptions options;
  options.max_active_fetches = 1;
  Start(options);
  grpc::ClientContext first_context;
  v1::FetchRequest request;
  request.set_model("big");
  request.set_chunk_bytes(16 << 10);
  // A narrow window keeps the first stream open while it is not read: with
  // BDP probing the whole 4 MiB model could fit into the client's window,
  // the server finish, and its slot free up (seen under TSan on a busy box).
  std::unique_ptr<v1::WeightService::Stub> narrow = NarrowWindowStub(server_->port());
  auto first = narrow->Fetch(&first_context, request);
  v1::FetchResponse response;
  ASSERT_TRUE(first->Read(&response));  // the first stream is open

  FetchResult second = FetchAll(stub_.get(), request);
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(second.status.error_message(), HasSubstr("max_active_fetches"));

  while (first->Read(&response)) {
  }
  ASSERT_TRUE(first->Finish().ok());
  // The slot is free again once the first stream is done.
  for (int attempt = 0; attempt < 50; ++attempt) {
    FetchResult third = FetchAll(stub_.get(), request);
    if (third.status.ok()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "a Fetch after the first finished was still refused";
}

TEST_F(LimitsTest, WithinTheLimitsRequestsAreServed) {
  ServerOptions options;
  options.request_limits.max_target_entries = 100;
  options.request_limits.max_rules = 5;
  Start(options);
  v1::MatchRequest request;
  request.set_model("lenet");
  request.mutable_rules()->set_auto_prefix(true);
  EXPECT_TRUE(Match(request).ok());
}

}  // namespace
}  // namespace weightd::testing
