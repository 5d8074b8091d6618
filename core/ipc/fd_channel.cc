#include "core/ipc/fd_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/util/errno_status.h"

namespace weightd {
namespace {

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetU32(absl::string_view s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(s[at + i])) << (8 * i);
  return v;
}

absl::Status BadRequest(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("side channel: bad request: ", why));
}

absl::Status BadReply(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("side channel: bad reply: ", why));
}

// Milliseconds poll() may wait until `deadline`, at least 0.
int PollTimeout(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

}  // namespace

std::string SideChannelPath(absl::string_view grpc_socket_path) {
  return absl::StrCat(grpc_socket_path, ".fds");
}

std::string EncodeFdRequest(absl::string_view handle) {
  std::string out(kFdRequestMagic, 4);
  PutU32(&out, static_cast<uint32_t>(handle.size()));
  out.append(handle.data(), handle.size());
  return out;
}

absl::StatusOr<std::string> DecodeFdRequest(absl::string_view message) {
  if (message.size() < kFdRequestHeaderBytes) {
    return BadRequest(absl::StrCat(message.size(), " bytes, shorter than a request header"));
  }
  if (message.substr(0, 4) != absl::string_view(kFdRequestMagic, 4)) {
    return BadRequest("no \"WDH1\" magic");
  }
  const uint32_t length = GetU32(message, 4);
  if (length == 0 || length > kMaxHandleBytes) {
    return BadRequest(absl::StrCat("handle of ", length, " bytes (1 to ", kMaxHandleBytes, ")"));
  }
  if (message.size() != kFdRequestHeaderBytes + length) {
    return BadRequest(absl::StrCat("message of ", message.size(), " bytes for a handle of ", length));
  }
  return std::string(message.substr(kFdRequestHeaderBytes));
}

std::string EncodeFdReply(const FdReplyHeader& header) {
  std::string out(kFdReplyMagic, 4);
  const absl::string_view error =
      absl::string_view(header.error).substr(0, kMaxErrorBytes);
  PutU32(&out, static_cast<uint32_t>(header.code));
  PutU32(&out, header.total_fds);
  PutU32(&out, header.first_fd);
  PutU32(&out, static_cast<uint32_t>(error.size()));
  out.append(error.data(), error.size());
  return out;
}

absl::StatusOr<FdReplyHeader> DecodeFdReply(absl::string_view message) {
  if (message.size() < kFdReplyHeaderBytes) {
    return BadReply(absl::StrCat(message.size(), " bytes, shorter than a reply header"));
  }
  if (message.substr(0, 4) != absl::string_view(kFdReplyMagic, 4)) {
    return BadReply("no \"WDF1\" magic");
  }
  FdReplyHeader header;
  const uint32_t code = GetU32(message, 4);
  // absl::StatusCode is 0..16, as gRPC's codes.
  if (code > static_cast<uint32_t>(absl::StatusCode::kUnauthenticated)) {
    return BadReply(absl::StrCat("status code ", code));
  }
  header.code = static_cast<absl::StatusCode>(code);
  header.total_fds = GetU32(message, 8);
  header.first_fd = GetU32(message, 12);
  const uint32_t error_length = GetU32(message, 16);
  if (header.total_fds > kMaxTotalFds) {
    return BadReply(absl::StrCat(header.total_fds, " descriptors announced, more than ",
                                 kMaxTotalFds));
  }
  if (header.first_fd > header.total_fds) {
    return BadReply(absl::StrCat("batch starts at descriptor ", header.first_fd, " of ",
                                 header.total_fds));
  }
  if (error_length > kMaxErrorBytes ||
      message.size() != kFdReplyHeaderBytes + static_cast<size_t>(error_length)) {
    return BadReply(absl::StrCat("error text of ", error_length, " bytes in a message of ",
                                 message.size()));
  }
  if (header.code == absl::StatusCode::kOk ? error_length != 0 : header.total_fds != 0) {
    return BadReply(header.code == absl::StatusCode::kOk ? "OK with an error text"
                                                         : "an error with descriptors");
  }
  header.error = std::string(message.substr(kFdReplyHeaderBytes));
  return header;
}

absl::Status SendFdMessage(int socket, absl::string_view bytes, absl::Span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat(fds.size(), " descriptors in one message, more than ", kMaxFdsPerMessage));
  }
  struct iovec iov;
  iov.iov_base = const_cast<char*>(bytes.data());
  iov.iov_len = bytes.size();
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  if (!fds.empty()) {
    const size_t length = sizeof(int) * fds.size();
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(length);
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(length);
    std::memcpy(CMSG_DATA(cmsg), fds.data(), length);
  }
  ssize_t sent;
  do {
    sent = ::sendmsg(socket, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::UnavailableError("side channel: the peer does not read (send would block)");
    }
    return ErrnoStatus("side channel", "sendmsg", errno);
  }
  if (static_cast<size_t>(sent) != bytes.size()) {
    return absl::DataLossError(absl::StrCat("side channel: sent ", sent, " of ", bytes.size(),
                                            " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<FdMessage> ReceiveFdMessage(int socket, size_t max_bytes, size_t max_fds,
                                           absl::Time deadline) {
  max_fds = std::min(max_fds, kMaxFdsPerMessage);
  for (;;) {
    struct pollfd p = {socket, POLLIN, 0};
    int ready = ::poll(&p, 1, PollTimeout(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ErrnoStatus("side channel", "poll", errno);
    if (ready == 0) {
      return absl::DeadlineExceededError("side channel: no message before the deadline");
    }
    break;
  }
  FdMessage out;
  // One byte more than allowed, so that a longer message shows as such.
  out.bytes.resize(max_bytes + 1);
  struct iovec iov;
  iov.iov_base = out.bytes.data();
  iov.iov_len = out.bytes.size();
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * std::max<size_t>(max_fds, 1));
  ssize_t got;
  do {
    got = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::UnavailableError("side channel: nothing to read");
    }
    return ErrnoStatus("side channel", "recvmsg", errno);
  }
  // Take ownership of whatever descriptors came before looking further, so
  // that every error below closes them.
  for (struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr;
       cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
      out.fds.emplace_back(fd);
    }
  }
  if (got == 0 && out.fds.empty()) {
    out.bytes.clear();
    out.eof = true;
    return out;
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0 || out.fds.size() > max_fds) {
    return absl::InvalidArgumentError(
        absl::StrCat("side channel: a message with more than ", max_fds, " descriptors"));
  }
  if ((msg.msg_flags & MSG_TRUNC) != 0 || static_cast<size_t>(got) > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("side channel: a message longer than ", max_bytes, " bytes"));
  }
  out.bytes.resize(static_cast<size_t>(got));
  return out;
}

void SendFdError(int socket, absl::StatusCode code, absl::string_view error) {
  FdReplyHeader header;
  header.code = code == absl::StatusCode::kOk ? absl::StatusCode::kUnknown : code;
  header.error = std::string(error.substr(0, kMaxErrorBytes));
  (void)SendFdMessage(socket, EncodeFdReply(header), {});
}

absl::Status ServeFdRequest(int socket, absl::string_view request, const FdRedeemer& redeem) {
  absl::StatusOr<std::string> handle = DecodeFdRequest(request);
  if (!handle.ok()) {
    SendFdError(socket, handle.status().code(), handle.status().message());
    return handle.status();
  }
  absl::StatusOr<std::vector<int>> fds = redeem(*handle);
  if (!fds.ok()) {
    SendFdError(socket, fds.status().code(), fds.status().message());
    return fds.status();
  }
  FdReplyHeader header;
  header.total_fds = static_cast<uint32_t>(fds->size());
  size_t first = 0;
  do {
    const size_t n = std::min(kMaxFdsPerMessage, fds->size() - first);
    header.first_fd = static_cast<uint32_t>(first);
    absl::Status sent = SendFdMessage(
        socket, EncodeFdReply(header), absl::Span<const int>(fds->data() + first, n));
    if (!sent.ok()) return sent;
    first += n;
  } while (first < fds->size());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<UniqueFd>> RedeemFdHandle(const std::string& socket_path,
                                                     absl::string_view handle,
                                                     absl::Time deadline) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat(socket_path, ": not a usable Unix socket path (empty or longer than ",
                     sizeof(addr.sun_path) - 1, " bytes)"));
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return ErrnoStatus(socket_path, "socket", errno);
  int rc;
  do {
    rc = ::connect(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    const int err = errno;
    return absl::UnavailableError(
        absl::StrCat(socket_path, ": cannot connect to the side channel: ", std::strerror(err)));
  }
  auto in_path = [&](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(socket_path, ": ", status.message()));
  };
  absl::Status sent = SendFdMessage(sock.get(), EncodeFdRequest(handle), {});
  if (!sent.ok()) return in_path(sent);
  std::vector<UniqueFd> fds;
  uint32_t total = 0;
  bool first_reply = true;
  while (first_reply || fds.size() < total) {
    absl::StatusOr<FdMessage> message =
        ReceiveFdMessage(sock.get(), kMaxFdReplyBytes, kMaxFdsPerMessage, deadline);
    if (!message.ok()) return in_path(message.status());
    if (message->eof) {
      return in_path(absl::DataLossError(absl::StrCat(
          "side channel closed after ", fds.size(), " of ",
          first_reply ? std::string("?") : absl::StrCat(total), " descriptors")));
    }
    absl::StatusOr<FdReplyHeader> header = DecodeFdReply(message->bytes);
    if (!header.ok()) return in_path(header.status());
    if (header->code != absl::StatusCode::kOk) {
      return in_path(absl::Status(header->code, absl::StrCat("server: ", header->error)));
    }
    if (first_reply) {
      total = header->total_fds;
      first_reply = false;
    } else if (header->total_fds != total) {
      return in_path(BadReply("the total changed between batches"));
    }
    if (header->first_fd != fds.size() || message->fds.size() > total - fds.size() ||
        (message->fds.empty() && total != 0)) {
      return in_path(BadReply(absl::StrCat("batch of ", message->fds.size(), " at ",
                                           header->first_fd, " after ", fds.size(), " of ",
                                           total)));
    }
    for (UniqueFd& fd : message->fds) fds.push_back(std::move(fd));
  }
  return fds;
}

}  // namespace weightd
