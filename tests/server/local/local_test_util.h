// Helpers of the same-node tests: a real server on 127.0.0.1:0 and a Unix
// socket in a short temporary directory (sun_path holds 107 bytes), stubs
// over both, and LocalFetch + side-channel redemption in one call.
#ifndef WEIGHTD_TESTS_SERVER_LOCAL_LOCAL_TEST_UTIL_H_
#define WEIGHTD_TESTS_SERVER_LOCAL_LOCAL_TEST_UTIL_H_

#include <dirent.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "core/ipc/fd_channel.h"
#include "core/ipc/unique_fd.h"
#include "gmock/gmock.h"
#include "proto/grpc_status.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {

// Open descriptors of this process.
inline int CountOpenFds() {
  int n = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (struct dirent* e = ::readdir(dir)) n += e->d_name[0] != '.';
  ::closedir(dir);
  return n - 1;  // the DIR's own
}

inline v1::FetchRequest FetchOf(const std::string& model) {
  v1::FetchRequest request;
  request.set_model(model);
  return request;
}

struct LocalResult {
  absl::Status status;
  v1::LocalFetchResponse response;
  std::vector<UniqueFd> fds;
};

class LocalServerTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    char dir[] = "/tmp/wdlXXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/w.sock";
    side_channel_ = SideChannelPath(socket_);
  }
  void TearDown() override {
    unix_stub_.reset();
    ServerTest::TearDown();
    std::filesystem::remove_all(dir_);
  }

  // The options StartLocal uses, on top of `base`.
  ServerOptions Options(ServerOptions base = {}) {
    base.repository = repo_;
    base.listen = absl::StrCat("127.0.0.1:0,unix:", socket_);
    return base;
  }

  void StartLocal(ServerOptions base = {}) {
    absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(Options(base));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::WeightService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
    unix_stub_ = v1::WeightService::NewStub(
        grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials()));
  }

  absl::StatusOr<v1::LocalFetchResponse> CallLocalFetch(v1::WeightService::Stub* stub,
                                                        const v1::FetchRequest& fetch,
                                                        bool checksums = false,
                                                        const std::string& token = "") {
    grpc::ClientContext context;
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    v1::LocalFetchRequest request;
    *request.mutable_fetch() = fetch;
    request.set_checksums(checksums);
    v1::LocalFetchResponse response;
    absl::Status status = FromGrpcStatus(stub->LocalFetch(&context, request, &response));
    if (!status.ok()) return status;
    return response;
  }

  LocalResult LocalFetchAll(v1::WeightService::Stub* stub, const v1::FetchRequest& fetch,
                            bool checksums = false) {
    LocalResult out;
    absl::StatusOr<v1::LocalFetchResponse> response = CallLocalFetch(stub, fetch, checksums);
    out.status = response.status();
    if (!response.ok()) return out;
    out.response = *std::move(response);
    if (out.response.handle().empty()) return out;
    absl::StatusOr<std::vector<UniqueFd>> fds =
        RedeemFdHandle(side_channel_, out.response.handle(), absl::Now() + absl::Seconds(10));
    out.status = fds.status();
    if (fds.ok()) out.fds = *std::move(fds);
    return out;
  }

  std::string dir_;
  std::string socket_;
  std::string side_channel_;
  std::unique_ptr<v1::WeightService::Stub> unix_stub_;
};

}  // namespace weightd::testing

#endif  // WEIGHTD_TESTS_SERVER_LOCAL_LOCAL_TEST_UTIL_H_
