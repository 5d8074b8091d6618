// The side channel of the same-node path (DESIGN.md section 9): a
// SOCK_SEQPACKET Unix socket on which a client redeems the one-time handle of
// a LocalFetch response for file descriptors (SCM_RIGHTS). gRPC carries the
// contract (layout, offsets, checksums); this carries only the descriptors.
// No gRPC here: the server's listener and the client share this code.
//
// Wire format (little-endian, one SEQPACKET message each):
//   request  "WDH1" u32 handle_len, handle bytes (at most kMaxHandleBytes)
//   reply    "WDF1" u32 code (absl::StatusCode), u32 total_fds, u32 first_fd,
//            u32 error_len, error text (at most kMaxErrorBytes); SCM_RIGHTS
//            with fds [first_fd, first_fd + n) of the total, n at most
//            kMaxFdsPerMessage. An OK reply with more fds than fit one
//            message is followed by more replies until total_fds arrived.
// One request per connection; the server closes it after the last reply.
#ifndef WEIGHTD_CORE_IPC_FD_CHANNEL_H_
#define WEIGHTD_CORE_IPC_FD_CHANNEL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/ipc/unique_fd.h"

namespace weightd {

inline constexpr char kFdRequestMagic[] = "WDH1";
inline constexpr char kFdReplyMagic[] = "WDF1";
inline constexpr size_t kMaxHandleBytes = 64;
inline constexpr size_t kMaxErrorBytes = 1024;
// Below the kernel's SCM_MAX_FD (253).
inline constexpr size_t kMaxFdsPerMessage = 250;
inline constexpr size_t kFdRequestHeaderBytes = 8;
inline constexpr size_t kFdReplyHeaderBytes = 20;
inline constexpr size_t kMaxFdRequestBytes = kFdRequestHeaderBytes + kMaxHandleBytes;
inline constexpr size_t kMaxFdReplyBytes = kFdReplyHeaderBytes + kMaxErrorBytes;
// Descriptors one reply sequence may announce; more is a broken reply.
inline constexpr uint32_t kMaxTotalFds = 1 << 16;

// The side-channel socket's file: beside the gRPC socket, ".fds" appended.
std::string SideChannelPath(absl::string_view grpc_socket_path);

std::string EncodeFdRequest(absl::string_view handle);
// InvalidArgument for a message that is not a request (wrong magic, length
// that disagrees with the message, handle empty or too long).
absl::StatusOr<std::string> DecodeFdRequest(absl::string_view message);

struct FdReplyHeader {
  absl::StatusCode code = absl::StatusCode::kOk;
  uint32_t total_fds = 0;
  uint32_t first_fd = 0;
  std::string error;  // truncated to kMaxErrorBytes when encoded
};

std::string EncodeFdReply(const FdReplyHeader& header);
// DataLoss for a message that is not a reply (wrong magic, sizes, a code
// out of absl's range, total_fds above kMaxTotalFds, first_fd past it).
absl::StatusOr<FdReplyHeader> DecodeFdReply(absl::string_view message);

// One sendmsg of `bytes` with `fds` attached (MSG_NOSIGNAL: a peer that went
// away is an error, not SIGPIPE). Unavailable when the socket would block.
absl::Status SendFdMessage(int socket, absl::string_view bytes, absl::Span<const int> fds);

struct FdMessage {
  std::string bytes;
  std::vector<UniqueFd> fds;
  bool eof = false;  // the peer closed; bytes and fds empty
};

// One recvmsg, waiting (poll) until `deadline`. Descriptors arrive
// close-on-exec and are owned by the result; on every error path they are
// closed. A message longer than `max_bytes` or with more than `max_fds`
// descriptors is InvalidArgument (truncated by the kernel; what came is
// closed). DeadlineExceeded when nothing arrived in time.
absl::StatusOr<FdMessage> ReceiveFdMessage(int socket, size_t max_bytes, size_t max_fds,
                                           absl::Time deadline);

// Server side of one connection: decodes `request`, asks `redeem` for the
// handle's descriptors (which stay owned by the caller), and sends the
// reply or replies. A bad request or a failed redeem is answered with an
// error reply and returned. Descriptors are only sent, never closed here.
using FdRedeemer = std::function<absl::StatusOr<std::vector<int>>(absl::string_view handle)>;
absl::Status ServeFdRequest(int socket, absl::string_view request, const FdRedeemer& redeem);

// Sends an error reply (best effort; for refusals before any request).
void SendFdError(int socket, absl::StatusCode code, absl::string_view error);

// Client side: connects to `socket_path` (SOCK_SEQPACKET), sends `handle`
// and collects the descriptors, waiting until `deadline`. The server's
// error comes back with its code and text, prefixed with the socket path;
// a broken or short reply is DataLoss, a missing socket Unavailable.
absl::StatusOr<std::vector<UniqueFd>> RedeemFdHandle(const std::string& socket_path,
                                                     absl::string_view handle,
                                                     absl::Time deadline);

}  // namespace weightd

#endif  // WEIGHTD_CORE_IPC_FD_CHANNEL_H_
