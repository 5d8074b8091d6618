#include "server/local/side_channel.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/ipc/fd_channel.h"
#include "core/util/errno_status.h"

namespace weightd {
namespace {

// How often the loop wakes without traffic: connection timeouts and the
// handle sweep are this precise.
constexpr int kTickMs = 100;

struct Connection {
  UniqueFd fd;
  absl::Time accepted;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SideChannelServer>> SideChannelServer::Start(
    const std::string& path, const UnixSocketAccess& access, HandleTable* table,
    SideChannelOptions options) {
  absl::Status clear = ClearStaleSocket(path, SOCK_SEQPACKET);
  if (!clear.ok()) return clear;
  absl::StatusOr<UniqueFd> listen =
      ListenSeqpacket(path, access, static_cast<int>(options.max_connections));
  if (!listen.ok()) return listen.status();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(path, "stat", errno);
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) {
    ::unlink(path.c_str());
    return ErrnoStatus(path, "eventfd", errno);
  }
  std::unique_ptr<SideChannelServer> server(new SideChannelServer(
      path, *std::move(listen), std::move(wake), st.st_ino, table, options));
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

SideChannelServer::SideChannelServer(std::string path, UniqueFd listen, UniqueFd wake,
                                     ino_t inode, HandleTable* table, SideChannelOptions options)
    : path_(std::move(path)),
      listen_(std::move(listen)),
      wake_(std::move(wake)),
      inode_(inode),
      table_(table),
      options_(options) {}

SideChannelServer::~SideChannelServer() { Stop(); }

void SideChannelServer::Stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  listen_.reset();
  struct stat st;
  // A newer daemon may have cleared our (then unanswered) file and bound its
  // own: leave that one alone.
  if (::stat(path_.c_str(), &st) == 0 && st.st_ino == inode_) ::unlink(path_.c_str());
}

void SideChannelServer::Loop() {
  std::vector<Connection> connections;
  std::vector<struct pollfd> polled;
  while (!stopping_.load()) {
    polled.clear();
    polled.push_back({wake_.get(), POLLIN, 0});
    polled.push_back({listen_.get(), POLLIN, 0});
    for (const Connection& c : connections) polled.push_back({c.fd.get(), POLLIN, 0});
    int ready = ::poll(polled.data(), polled.size(), kTickMs);
    if (ready < 0 && errno != EINTR) break;
    if (stopping_.load()) break;
    const absl::Time now = absl::Now();
    std::vector<Connection> kept;
    kept.reserve(connections.size());
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection& c = connections[i];
      const short events = ready > 0 ? polled[i + 2].revents : 0;
      if (events == 0) {
        if (now - c.accepted > options_.request_timeout) {
          SendFdError(c.fd.get(), absl::StatusCode::kDeadlineExceeded,
                      absl::StrCat("no request within ",
                                   absl::FormatDuration(options_.request_timeout),
                                   " of connecting"));
          continue;  // closed with `c`
        }
        kept.push_back(std::move(c));
        continue;
      }
      // Readable, hung up or failed: one attempt at the request, then the
      // connection is done whatever came. Descriptors a client sends along
      // are taken and closed (max_fds 0 also truncates them away).
      absl::StatusOr<FdMessage> message =
          ReceiveFdMessage(c.fd.get(), kMaxFdRequestBytes, 0, now);
      if (!message.ok()) {
        if (!absl::IsUnavailable(message.status()) && !absl::IsDeadlineExceeded(message.status())) {
          SendFdError(c.fd.get(), message.status().code(), message.status().message());
        } else if (events == POLLIN) {
          kept.push_back(std::move(c));  // spurious wake-up
        }
        continue;
      }
      if (message->eof) continue;
      std::optional<PendingHandoff> handoff;
      (void)ServeFdRequest(c.fd.get(), message->bytes,
                           [&](absl::string_view handle) -> absl::StatusOr<std::vector<int>> {
                             absl::StatusOr<PendingHandoff> taken = table_->Take(handle);
                             if (!taken.ok()) return taken.status();
                             handoff = *std::move(taken);
                             std::vector<int> fds;
                             for (const UniqueFd& fd : handoff->fds) fds.push_back(fd.get());
                             return fds;
                           });
      // The descriptors are in flight (the kernel holds references) or the
      // peer is gone; either way ours close here, with the handoff.
    }
    connections = std::move(kept);
    if (ready > 0 && (polled[1].revents & POLLIN) != 0) {
      for (;;) {
        UniqueFd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd.valid()) {
          // Out of descriptors: the pending connection stays queued and the
          // listener readable; wait a tick instead of spinning on it.
          if (errno == EMFILE || errno == ENFILE) ::poll(nullptr, 0, kTickMs);
          break;  // EAGAIN, or an error on one connection attempt
        }
        connections_.fetch_add(1);
        if (connections.size() >= options_.max_connections) {
          SendFdError(fd.get(), absl::StatusCode::kResourceExhausted,
                      absl::StrCat(connections.size(),
                                   " side-channel connections open, the limit; retry"));
          continue;
        }
        connections.push_back({std::move(fd), absl::Now()});
      }
    }
    table_->Sweep();
  }
}

}  // namespace weightd
