// Fuzzes the side channel of the same-node path (core/ipc/fd_channel.h). The
// first byte picks the target, the rest is one message:
//   0  DecodeFdRequest; a decoded request must encode back to the input
//   1  DecodeFdReply; a decoded reply must encode back to the input
//   2  a round trip over a socketpair: the server's handler (ServeFdRequest)
//      answers the message, with descriptors for the handles "fuzz-handle"
//      (3) and "fuzz-handle-many" (260, two batches), and the client's reader
//      decodes what comes back. Every descriptor received is closed; the
//      process's descriptor count must not grow.
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "core/ipc/fd_channel.h"

namespace {

int CountFds() {
  int n = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (struct dirent* e = ::readdir(dir)) n += e->d_name[0] != '.';
  ::closedir(dir);
  return n;
}

const std::vector<int>& Descriptors(size_t n) {
  static std::vector<int>* few = nullptr;
  static std::vector<int>* many = nullptr;
  if (few == nullptr) {
    few = new std::vector<int>();
    many = new std::vector<int>();
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < 3; ++i) few->push_back(null);
    for (int i = 0; i < 260; ++i) many->push_back(null);
  }
  return n == 3 ? *few : *many;
}

void RoundTrip(absl::string_view message) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) abort();
  weightd::UniqueFd server(pair[0]), client(pair[1]);
  (void)weightd::ServeFdRequest(
      server.get(), message, [](absl::string_view handle) -> absl::StatusOr<std::vector<int>> {
        if (handle == "fuzz-handle") return Descriptors(3);
        if (handle == "fuzz-handle-many") return Descriptors(260);
        return absl::NotFoundError("unknown handle");
      });
  server.reset();
  size_t received = 0;
  for (;;) {
    absl::StatusOr<weightd::FdMessage> reply = weightd::ReceiveFdMessage(
        client.get(), weightd::kMaxFdReplyBytes, weightd::kMaxFdsPerMessage, absl::Now());
    if (!reply.ok() || reply->eof) break;
    received += reply->fds.size();
    absl::StatusOr<weightd::FdReplyHeader> header = weightd::DecodeFdReply(reply->bytes);
    if (!header.ok()) abort();  // the server only sends replies it can decode
    if (header->code == absl::StatusCode::kOk && header->first_fd != received - reply->fds.size()) {
      abort();
    }
  }
  if (received != 0 && received != 3 && received != 260) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  Descriptors(3);
  const absl::string_view message(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      absl::StatusOr<std::string> handle = weightd::DecodeFdRequest(message);
      if (handle.ok() && weightd::EncodeFdRequest(*handle) != message) abort();
      break;
    }
    case 1: {
      absl::StatusOr<weightd::FdReplyHeader> reply = weightd::DecodeFdReply(message);
      if (reply.ok() && weightd::EncodeFdReply(*reply) != message) abort();
      break;
    }
    case 2: {
      const int before = CountFds();
      RoundTrip(message);
      if (CountFds() != before) abort();  // a descriptor leaked
      break;
    }
  }
  return 0;
}
