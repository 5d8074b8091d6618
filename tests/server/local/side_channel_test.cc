// The side channel under bad input, against a real server: unknown, reused
// and expired handles, garbage, peers that leave early or say nothing, more
// connections than allowed, descriptors sent to the server, and tokens. The
// daemon must answer each clearly, keep serving, and leak no descriptor.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "core/ipc/fd_channel.h"
#include "server/local/handle_table.h"
#include "server/local/side_channel.h"
#include "tests/server/local/local_test_util.h"

namespace weightd::testing {
namespace {

UniqueFd Connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0)
      << path << ": " << std::strerror(errno);
  return fd;
}

// The server's reply on `fd` (after the caller sent something, or nothing).
absl::StatusOr<FdReplyHeader> Reply(int fd, absl::Duration wait = absl::Seconds(5)) {
  absl::StatusOr<FdMessage> message =
      ReceiveFdMessage(fd, kMaxFdReplyBytes, kMaxFdsPerMessage, absl::Now() + wait);
  if (!message.ok()) return message.status();
  if (message->eof) return absl::AbortedError("closed without a reply");
  EXPECT_TRUE(message->fds.empty());
  return DecodeFdReply(message->bytes);
}

// Waits (a little) for the server to close what the test let go.
void ExpectFdsBackTo(int baseline) {
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (CountOpenFds() != baseline && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(CountOpenFds(), baseline);
}

class SideChannelTest : public LocalServerTest {};

TEST_F(SideChannelTest, AnUnknownHandleGetsNotFoundAndNoDescriptor) {
  StartLocal();
  absl::StatusOr<std::vector<UniqueFd>> fds =
      RedeemFdHandle(side_channel_, "00112233445566778899aabbccddeeff", absl::Now() + absl::Seconds(5));
  EXPECT_EQ(fds.status().code(), absl::StatusCode::kNotFound) << fds.status();
  EXPECT_THAT(fds.status().message(), ::testing::HasSubstr("unknown handle"));
  EXPECT_THAT(fds.status().message(), ::testing::HasSubstr(side_channel_));
}

TEST_F(SideChannelTest, AHandleIsGoodForOneRedemption) {
  StartLocal();
  absl::StatusOr<v1::LocalFetchResponse> r = CallLocalFetch(unix_stub_.get(), FetchOf("lenet"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(server_->pending_local_handles(), 1u);
  EXPECT_TRUE(RedeemFdHandle(side_channel_, r->handle(), absl::Now() + absl::Seconds(5)).ok());
  EXPECT_EQ(server_->pending_local_handles(), 0u);
  absl::StatusOr<std::vector<UniqueFd>> again =
      RedeemFdHandle(side_channel_, r->handle(), absl::Now() + absl::Seconds(5));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound) << again.status();
}

TEST_F(SideChannelTest, AnExpiredHandleIsVoidAndItsDescriptorsClosed) {
  ServerOptions options;
  options.local_handle_ttl = absl::Milliseconds(200);
  StartLocal(options);
  // Loaded (the snapshot holds its file open) and gRPC warmed up first.
  ASSERT_TRUE(LocalFetchAll(unix_stub_.get(), FetchOf("ddp")).status.ok());
  const int baseline = CountOpenFds();
  absl::StatusOr<v1::LocalFetchResponse> r = CallLocalFetch(unix_stub_.get(), FetchOf("ddp"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->expires_ms(), 200u);
  // The handle holds a dup of the checkpoint file and a memfd.
  EXPECT_EQ(CountOpenFds(), baseline + 2);
  absl::SleepFor(absl::Milliseconds(400));
  // Swept by the listener's tick, before anyone asks.
  ExpectFdsBackTo(baseline);
  EXPECT_EQ(server_->pending_local_handles(), 0u);
  absl::StatusOr<std::vector<UniqueFd>> fds =
      RedeemFdHandle(side_channel_, r->handle(), absl::Now() + absl::Seconds(5));
  EXPECT_EQ(fds.status().code(), absl::StatusCode::kNotFound) << fds.status();
}

TEST_F(SideChannelTest, GarbageIsAnsweredInvalidArgument) {
  StartLocal();
  for (const std::string& garbage :
       {std::string("hello"), std::string("WDH1\xff\xff\xff\xff", 8), std::string(72, 'W'),
        EncodeFdRequest(std::string(kMaxHandleBytes + 1, 'a')), std::string("WDF1abcdefgh")}) {
    UniqueFd fd = Connect(side_channel_);
    ASSERT_TRUE(SendFdMessage(fd.get(), garbage, {}).ok());
    absl::StatusOr<FdReplyHeader> reply = Reply(fd.get());
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->code, absl::StatusCode::kInvalidArgument) << reply->error;
    EXPECT_EQ(reply->total_fds, 0u);
  }
  EXPECT_TRUE(CallLocalFetch(unix_stub_.get(), FetchOf("lenet")).ok()) << "still serving";
}

TEST_F(SideChannelTest, AnOversizedMessageIsRefused) {
  StartLocal();
  UniqueFd fd = Connect(side_channel_);
  ASSERT_TRUE(SendFdMessage(fd.get(), std::string(100000, 'x'), {}).ok());
  absl::StatusOr<FdReplyHeader> reply = Reply(fd.get());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code, absl::StatusCode::kInvalidArgument) << reply->error;
}

TEST_F(SideChannelTest, DescriptorsSentToTheServerAreClosed) {
  StartLocal();
  const int baseline = CountOpenFds();
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  {
    UniqueFd fd = Connect(side_channel_);
    int both[2] = {pipe_fds[0], pipe_fds[1]};
    ASSERT_TRUE(SendFdMessage(fd.get(), EncodeFdRequest("00"), absl::MakeSpan(both, 2)).ok());
    absl::StatusOr<FdReplyHeader> reply = Reply(fd.get());
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_NE(reply->code, absl::StatusCode::kOk);
  }
  ::close(pipe_fds[0]);
  // The write end is closed server-side too: reading the pipe's other end
  // would not see EOF otherwise. The count says it directly.
  ::close(pipe_fds[1]);
  ExpectFdsBackTo(baseline);
}

TEST_F(SideChannelTest, APeerThatSaysNothingIsTimedOut) {
  ServerOptions options;
  options.local_request_timeout = absl::Milliseconds(300);
  StartLocal(options);
  UniqueFd fd = Connect(side_channel_);
  absl::StatusOr<FdReplyHeader> reply = Reply(fd.get(), absl::Seconds(5));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code, absl::StatusCode::kDeadlineExceeded) << reply->error;
}

TEST_F(SideChannelTest, PeersThatLeaveEarlyLeakNothing) {
  StartLocal();
  const int baseline = CountOpenFds();
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<v1::LocalFetchResponse> r = CallLocalFetch(unix_stub_.get(), FetchOf("ddp"));
    ASSERT_TRUE(r.ok()) << r.status();
    UniqueFd fd = Connect(side_channel_);
    // Half send the handle and close before the reply, half close at once.
    if (i % 2 == 0) ASSERT_TRUE(SendFdMessage(fd.get(), EncodeFdRequest(r->handle()), {}).ok());
  }
  // The handles of the second half expire; wait past the sweep.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (server_->pending_local_handles() > 10 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_LE(server_->pending_local_handles(), 10u);
  EXPECT_TRUE(CallLocalFetch(unix_stub_.get(), FetchOf("lenet")).ok()) << "still serving";
  server_.reset();
  unix_stub_.reset();
  stub_.reset();
  admin_.reset();
  channel_.reset();
  // What the server held (its sockets, snapshot files, pending handles) is
  // all gone with it; what is left is the baseline minus the server's own.
  EXPECT_LE(CountOpenFds(), baseline);
}

TEST_F(SideChannelTest, ConnectionsPastTheLimitAreRefusedAndTheServerRecovers) {
  ServerOptions options;
  options.local_max_connections = 4;
  // Handles of attempts refused while the four are held expire soon.
  options.local_handle_ttl = absl::Milliseconds(500);
  StartLocal(options);
  ASSERT_TRUE(LocalFetchAll(unix_stub_.get(), FetchOf("lenet")).status.ok());  // loaded
  const int baseline = CountOpenFds();
  {
    std::vector<UniqueFd> held;
    for (int i = 0; i < 4; ++i) held.push_back(Connect(side_channel_));
    absl::SleepFor(absl::Milliseconds(300));  // accepted
    int refused = 0;
    for (int i = 0; i < 16; ++i) {
      UniqueFd extra = Connect(side_channel_);
      absl::StatusOr<FdReplyHeader> reply = Reply(extra.get());
      ASSERT_TRUE(reply.ok()) << reply.status();
      refused += reply->code == absl::StatusCode::kResourceExhausted;
    }
    EXPECT_EQ(refused, 16);
  }
  // The four let go: a real redemption works again.
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  absl::StatusOr<std::vector<UniqueFd>> fds;
  do {
    absl::StatusOr<v1::LocalFetchResponse> r = CallLocalFetch(unix_stub_.get(), FetchOf("lenet"));
    ASSERT_TRUE(r.ok()) << r.status();
    fds = RedeemFdHandle(side_channel_, r->handle(), absl::Now() + absl::Seconds(5));
  } while (!fds.ok() && absl::Now() < deadline);
  EXPECT_TRUE(fds.ok()) << fds.status();
  fds = std::vector<UniqueFd>();
  ExpectFdsBackTo(baseline);
}

TEST_F(SideChannelTest, AFloodOfRedemptionsIsServedAndLeaksNothing) {
  StartLocal();
  ASSERT_TRUE(LocalFetchAll(unix_stub_.get(), FetchOf("ddp")).status.ok());  // loaded
  const int baseline = CountOpenFds();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        absl::StatusOr<v1::LocalFetchResponse> r =
            CallLocalFetch(unix_stub_.get(), FetchOf("ddp"));
        if (!r.ok()) continue;
        absl::StatusOr<std::vector<UniqueFd>> fds =
            RedeemFdHandle(side_channel_, r->handle(), absl::Now() + absl::Seconds(10));
        ok += fds.ok() && fds->size() == 2;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(server_->pending_local_handles(), 0u);
  ExpectFdsBackTo(baseline);
}

// More descriptors than one SCM_RIGHTS message carries (250) arrive in
// batches, in order.
TEST(SideChannelServerTest, ManyDescriptorsArriveInBatches) {
  char dir[] = "/tmp/wdsXXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/s.fds";
  HandleTable table(4, absl::Seconds(5));
  absl::StatusOr<std::unique_ptr<SideChannelServer>> server =
      SideChannelServer::Start(path, UnixSocketAccess(), &table);
  ASSERT_TRUE(server.ok()) << server.status();
  PendingHandoff handoff;
  std::vector<int> pipes;
  for (int i = 0; i < 300; ++i) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    ::close(p[0]);
    pipes.push_back(p[1]);
    handoff.fds.emplace_back(::dup(p[1]));
  }
  absl::StatusOr<std::string> handle = table.Add(std::move(handoff));
  ASSERT_TRUE(handle.ok());
  absl::StatusOr<std::vector<UniqueFd>> fds =
      RedeemFdHandle(path, *handle, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(fds.ok()) << fds.status();
  ASSERT_EQ(fds->size(), 300u);
  for (size_t i = 0; i < 300; ++i) {
    struct stat a, b;
    ASSERT_EQ(::fstat((*fds)[i].get(), &a), 0);
    ASSERT_EQ(::fstat(pipes[i], &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino) << "descriptor " << i << " out of order";
    ::close(pipes[i]);
  }
  (*server)->Stop();
  std::filesystem::remove_all(dir);
}

constexpr char kReadToken[] = "local-read-token";
constexpr char kAdminToken[] = "local-admin-token";

class LocalTokenTest : public LocalServerTest {
 protected:
  void StartWithTokens() {
    const std::string tokens = dir_ + "/tokens";
    std::ofstream(tokens) << kReadToken << " read\n" << kAdminToken << " admin\n";
    ServerOptions options;
    options.auth_tokens_file = tokens;
    StartLocal(options);
  }
};

TEST_F(LocalTokenTest, TheReadRoleGetsDescriptors) {
  StartWithTokens();
  for (const char* token : {kReadToken, kAdminToken}) {
    absl::StatusOr<v1::LocalFetchResponse> r =
        CallLocalFetch(unix_stub_.get(), FetchOf("lenet"), false, token);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(RedeemFdHandle(side_channel_, r->handle(), absl::Now() + absl::Seconds(5)).ok());
  }
}

TEST_F(LocalTokenTest, NoTokenOrAnUnknownOneGetsNoHandle) {
  StartWithTokens();
  absl::StatusOr<v1::LocalFetchResponse> none = CallLocalFetch(unix_stub_.get(), FetchOf("lenet"));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnauthenticated) << none.status();
  absl::StatusOr<v1::LocalFetchResponse> bad =
      CallLocalFetch(unix_stub_.get(), FetchOf("lenet"), false, "not-a-token");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kUnauthenticated) << bad.status();
  EXPECT_EQ(server_->pending_local_handles(), 0u);
}

}  // namespace
}  // namespace weightd::testing
