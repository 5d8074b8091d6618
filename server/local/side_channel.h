// The side-channel listener of the same-node path: redeems LocalFetch
// handles for descriptors over a SOCK_SEQPACKET Unix socket beside the gRPC
// socket (core/ipc/fd_channel.h has the wire format). No gRPC here.
//
// One thread, poll(): at most max_connections open at once (more are sent an
// error and closed), each must send its one request within request_timeout,
// each gets its reply and is closed. Every descriptor the listener receives
// or accepts is closed on every path; expired handles are swept as it goes.
#ifndef WEIGHTD_SERVER_LOCAL_SIDE_CHANNEL_H_
#define WEIGHTD_SERVER_LOCAL_SIDE_CHANNEL_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/ipc/unique_fd.h"
#include "server/local/handle_table.h"
#include "server/local/unix_socket.h"

namespace weightd {

struct SideChannelOptions {
  size_t max_connections = 64;
  absl::Duration request_timeout = absl::Seconds(2);
};

// Thread-safe: Stop may be called from any thread. `table` must outlive it.
class SideChannelServer {
 public:
  // Clears a stale socket at `path` (an answering one is AlreadyExists),
  // binds with `access` and starts the thread.
  static absl::StatusOr<std::unique_ptr<SideChannelServer>> Start(const std::string& path,
                                                                  const UnixSocketAccess& access,
                                                                  HandleTable* table,
                                                                  SideChannelOptions options = {});
  ~SideChannelServer();
  SideChannelServer(const SideChannelServer&) = delete;
  SideChannelServer& operator=(const SideChannelServer&) = delete;

  // Stops the thread, closes every connection and removes the socket file
  // (unless another process has replaced it since). Idempotent.
  void Stop();

  const std::string& path() const { return path_; }
  // Connections served or refused so far (for tests).
  uint64_t connections() const { return connections_.load(); }

 private:
  SideChannelServer(std::string path, UniqueFd listen, UniqueFd wake, ino_t inode,
                    HandleTable* table, SideChannelOptions options);
  void Loop();

  const std::string path_;
  UniqueFd listen_;
  UniqueFd wake_;  // eventfd: Stop wakes poll()
  const ino_t inode_;
  HandleTable* const table_;
  const SideChannelOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> connections_{0};
  std::thread thread_;
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_LOCAL_SIDE_CHANNEL_H_
