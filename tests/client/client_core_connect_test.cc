// How ClientCore's first call connects (issue 15): a connection attempt gets
// ClientOptions::connect_timeout, not the 100 ms retry backoff, so a server
// slow to answer its first bytes (a busy node, a herd of clients starting at
// once) is waited for; a silent one fails after the connect timeout, a
// refused one at once, each with an error that names the target.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client_core.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/weight_server.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;

int ListenLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 16) != 0) {
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// A TCP relay to 127.0.0.1:`upstream` that holds each connection `delay`
// before passing any byte: the kernel completes the client's TCP handshake
// at once, but the server's HTTP/2 SETTINGS arrive only after `delay`, as
// from a server starved of CPU.
class SlowProxy {
 public:
  SlowProxy(int upstream, absl::Duration delay) : upstream_(upstream), delay_(delay) {
    listen_fd_ = ListenLoopback(&port_);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~SlowProxy() {
    stop_ = true;
    // shutdown() wakes the blocked accept() and relay poll()s.
    shutdown(listen_fd_, SHUT_RDWR);
    accept_thread_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : relays_) t.join();
    for (int fd : fds_) close(fd);
    close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  void AcceptLoop() {
    while (!stop_) {
      int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(client);
      relays_.emplace_back([this, client] { Relay(client); });
    }
  }

  void Relay(int client) {
    absl::SleepFor(delay_);
    int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    {
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(server);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(upstream_);
    if (stop_ || connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return;
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    char buf[64 << 10];
    while (!stop_ && poll(fds, 2, 1000) >= 0) {
      for (int i = 0; i < 2; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        ssize_t n = recv(fds[i].fd, buf, sizeof(buf), 0);
        if (n <= 0) return;
        for (ssize_t off = 0; off < n;) {
          // MSG_NOSIGNAL: a peer gone first must end the relay, not the test (SIGPIPE).
          ssize_t w = send(fds[1 - i].fd, buf + off, n - off, MSG_NOSIGNAL);
          if (w <= 0) return;
          off += w;
        }
      }
    }
  }

  const int upstream_;
  const absl::Duration delay_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> relays_;
};

std::unique_ptr<WeightServer> StartServer() {
  ServerOptions options;
  options.repository = WEIGHTD_CLIENT_TEST_DATA "/repo";
  absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

TEST(ClientConnectTest, WaitsForAServerSlowToSendItsFirstBytes) {
  std::unique_ptr<WeightServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  // Longer than the whole default retry window (100 + 200 + 400 + 800 ms):
  // the first attempt itself must last, retries cannot make up for it.
  SlowProxy proxy(server->port(), absl::Milliseconds(1800));
  ClientCore client(ClientOptions{.target = absl::StrCat("127.0.0.1:", proxy.port())});
  absl::StatusOr<std::vector<ModelInfo>> models = client.ListModels();
  EXPECT_TRUE(models.ok()) << models.status();
}

TEST(ClientConnectTest, SilentServerFailsAfterTheConnectTimeoutNamingTheTarget) {
  // Listens (the kernel accepts connections into the backlog) but never
  // speaks.
  int port = 0;
  const int fd = ListenLoopback(&port);
  ASSERT_GE(fd, 0);
  ClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", port);
  options.connect_timeout = absl::Milliseconds(300);
  options.max_attempts = 2;
  ClientCore client(options);
  const absl::Time start = absl::Now();
  absl::Status status = client.ListModels().status();
  const absl::Duration took = absl::Now() - start;
  close(fd);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("weightd at ", options.target)));
  EXPECT_THAT(status.message(), HasSubstr("2 attempts"));
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Seconds(10));
}

TEST(ClientConnectTest, RefusedConnectionFailsWithinSecondsDespiteTheConnectTimeout) {
  int port = 0;
  close(ListenLoopback(&port));  // nothing listens there now
  ClientOptions options;         // defaults: 20 s connect timeout, 5 attempts
  options.target = absl::StrCat("127.0.0.1:", port);
  ClientCore client(options);
  const absl::Time start = absl::Now();
  absl::Status status = client.ListModels().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("weightd at ", options.target)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace weightd::testing
