// A checkpoint load that blocks (a slow or hung file system) must not hold
// gRPC's callback threads: health checks, ListModels and other models keep
// answering while GetManifest, Match and Fetch calls wait for the load.
//
// The blocking load is real: the model's file is replaced, after the scan, by
// a FIFO, whose open() blocks until a writer opens the other end.
#include <sys/stat.h>
#include <sys/types.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class BlockingLoadTest : public ServerTest {
 protected:
  // Makes the next load of `big` block in open() until Unblock().
  void BlockBigLoad() {
    fifo_ = repo_ + "/big/1/model.pt";
    std::filesystem::remove(fifo_);
    ASSERT_EQ(mkfifo(fifo_.c_str(), 0644), 0);
  }
  // Lets every open() of the FIFO return (the load opens the file more than
  // once) until the test ends; the FIFO is no checkpoint, so the load fails.
  void Unblock() {
    releaser_ = std::thread([this] {
      while (!stop_) {
        const int fd = open(fifo_.c_str(), O_WRONLY | O_NONBLOCK);  // ENXIO: no reader yet
        if (fd >= 0) close(fd);
        absl::SleepFor(absl::Milliseconds(5));
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    if (releaser_.joinable()) releaser_.join();
    ServerTest::TearDown();
  }

  std::thread releaser_;
  std::atomic<bool> stop_{false};
  std::string fifo_;
};

absl::Duration Elapsed(absl::Time since) { return absl::Now() - since; }

TEST_F(BlockingLoadTest, HealthListAndOtherModelsAnswerWhileLoadsBlock) {
  StartServer();
  BlockBigLoad();

  // More blocked calls than gRPC has callback threads on a small machine.
  constexpr int kBlocked = 6;
  struct Call {
    grpc::ClientContext context;
    v1::GetManifestResponse response;
    grpc::Status status;
    bool done = false;
  };
  // No ASSERT until every call has completed: the callbacks use these.
  std::vector<std::unique_ptr<Call>> calls;
  absl::Mutex mu;
  int done = 0;
  for (int i = 0; i < kBlocked; ++i) {
    calls.push_back(std::make_unique<Call>());
    Call* call = calls.back().get();
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::GetManifestRequest request;
    request.set_model("big");
    stub_->async()->GetManifest(&call->context, &request, &call->response,
                                [call, &mu, &done](grpc::Status status) {
                                  absl::MutexLock lock(&mu);
                                  call->status = std::move(status);
                                  call->done = true;
                                  ++done;
                                });
  }
  // A Fetch of the blocked model too: its stream waits, it does not block.
  grpc::ClientContext fetch_context;
  v1::FetchRequest fetch;
  fetch.set_model("big");
  auto fetch_reader = stub_->Fetch(&fetch_context, fetch);
  absl::SleepFor(absl::Milliseconds(300));  // let the calls reach the server

  const absl::Time start = absl::Now();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    HealthCheckResponse response;
    grpc::Status status = health->Check(&context, HealthCheckRequest(), &response);
    EXPECT_TRUE(status.ok()) << "health check while loads block: " << status.error_message();
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListModelsResponse list;
    grpc::Status status = stub_->ListModels(&context, v1::ListModelsRequest(), &list);
    EXPECT_TRUE(status.ok()) << "ListModels while loads block: " << status.error_message();
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetManifestRequest request;
    request.set_model("lenet");
    v1::GetManifestResponse manifest;
    grpc::Status status = stub_->GetManifest(&context, request, &manifest);
    EXPECT_TRUE(status.ok()) << "another model while loads block: " << status.error_message();
    EXPECT_GT(manifest.tensors_size(), 0);
  }
  EXPECT_LT(Elapsed(start), absl::Seconds(10));
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(done, 0) << "the blocked calls answered before the load returned";
  }

  Unblock();
  {
    absl::MutexLock lock(&mu);
    const absl::Condition all_done(+[](int* n) { return *n == kBlocked; }, &done);
    if (!mu.AwaitWithTimeout(all_done, absl::Seconds(30))) {
      ADD_FAILURE() << "the blocked calls did not end after the load returned";
      for (const auto& call : calls) call->context.TryCancel();
      mu.Await(all_done);
    }
  }
  for (const auto& call : calls) {
    // A FIFO is not a checkpoint: every waiter gets the load's error.
    EXPECT_EQ(call->status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << call->status.error_message();
    EXPECT_THAT(call->status.error_message(), ::testing::HasSubstr("model.pt"));
  }
  v1::FetchResponse response;
  while (fetch_reader->Read(&response)) {
  }
  EXPECT_FALSE(fetch_reader->Finish().ok());
}

}  // namespace
}  // namespace weightd::testing
