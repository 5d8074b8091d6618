#include "client/local_fetch.h"

#include <grpcpp/grpcpp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "client/convert.h"
#include "core/checkpoint/tensor.h"
#include "core/ipc/fd_channel.h"
#include "core/match/match.h"
#include "core/util/status_macros.h"
#include "proto/grpc_status.h"

namespace weightd::client_internal {
namespace {

// The most bytes handed to the sink at once, so progress callbacks come
// often enough on a model of a few huge tensors.
constexpr uint64_t kSliceBytes = 64 << 20;
// As the server bounds a failed Fetch's status message.
constexpr size_t kMaxStatusMessageBytes = 2048;
// How long the side channel may take, at most (the call's deadline may be
// shorter): it is a local socket, seconds mean the server is stuck.
constexpr absl::Duration kSideChannelTimeout = absl::Seconds(10);

// A read-only mapping of part of one received file.
class Mapping {
 public:
  Mapping() = default;
  ~Mapping() {
    if (addr_ != nullptr) ::munmap(addr_, length_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  // Maps bytes [lo, hi) of `fd` (MAP_SHARED, PROT_READ). Not MAP_POPULATE:
  // the pages are faulted in by whichever thread copies them, so with
  // Load's copy threads the page-table work is split too (1 GiB, 2 threads:
  // 0.116 s faulting against 0.133 s populated at mmap time in one thread;
  // on one thread the two are alike; bench/RESULTS.md, run 5). This
  // kernel maps the page cache's large folios whole: ~1800 faults a GiB.
  absl::Status Map(int fd, uint64_t lo, uint64_t hi, absl::string_view name) {
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    start_ = lo / page * page;
    length_ = static_cast<size_t>(hi - start_);
    void* addr = ::mmap(nullptr, length_, PROT_READ, MAP_SHARED, fd,
                        static_cast<off_t>(start_));
    if (addr == MAP_FAILED) {
      const int err = errno;
      length_ = 0;
      return absl::FailedPreconditionError(
          absl::StrCat("cannot map ", name, ": ", std::strerror(err)));
    }
    addr_ = addr;
    return absl::OkStatus();
  }

  const char* At(uint64_t offset) const {
    return static_cast<const char*>(addr_) + (offset - start_);
  }

 private:
  void* addr_ = nullptr;
  size_t length_ = 0;
  uint64_t start_ = 0;
};

std::string Hex(uint64_t value) { return absl::StrCat(absl::Hex(value, absl::kZeroPad16)); }

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Everything the local path needs before the sink sees anything; any
// failure here falls back to the stream.
struct Prepared {
  v1::LocalFetchResponse response;
  std::vector<std::unique_ptr<Mapping>> mappings;  // by file index; null: unmapped
  std::vector<DType> dtypes;                       // by tensor
};

// Side channel + mapping + validation of the layout. Errors are reasons to
// fall back, worded for TransportInfo::note.
absl::Status Prepare(const std::string& socket_path, absl::Time deadline, Prepared* p) {
  const v1::LocalFetchResponse& r = p->response;
  const std::string& side = r.side_channel();
  if (side.empty() || side.find('/') != std::string::npos || side == "." || side == "..") {
    return absl::FailedPreconditionError(
        absl::StrCat("the server named side channel \"", side, "\", not a file name"));
  }
  absl::StatusOr<std::vector<UniqueFd>> fds = std::vector<UniqueFd>();
  if (!r.files().empty()) {
    // The server's path may differ in this mount namespace: the name is
    // resolved beside our own socket; PATH.fds (how the server names it) is
    // tried next, for a server with several unix sockets.
    const std::string beside = absl::StrCat(DirectoryOf(socket_path), "/", side);
    fds = RedeemFdHandle(beside, r.handle(), deadline);
    if (!fds.ok() && absl::IsUnavailable(fds.status()) &&
        beside != SideChannelPath(socket_path)) {
      fds = RedeemFdHandle(SideChannelPath(socket_path), r.handle(), deadline);
    }
    if (!fds.ok()) return fds.status();
  }
  if (fds->size() != static_cast<size_t>(r.files_size())) {
    return absl::DataLossError(absl::StrCat("side channel sent ", fds->size(),
                                            " descriptors for ", r.files_size(), " files"));
  }
  // The span of each file the tensors use.
  std::vector<uint64_t> lo(fds->size(), UINT64_MAX), hi(fds->size(), 0);
  for (const v1::LocalTensor& t : r.tensors()) {
    absl::StatusOr<DType> dtype = ParseDType(t.dtype());
    if (!dtype.ok()) {
      return absl::DataLossError(
          absl::StrCat("tensor ", t.name(), ": unknown dtype \"", t.dtype(), "\""));
    }
    std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
    absl::StatusOr<int64_t> numel = CheckedNumel(shape);
    if (!numel.ok() || static_cast<uint64_t>(*numel) * DTypeSize(*dtype) != t.nbytes()) {
      return absl::DataLossError(absl::StrCat("tensor ", t.name(), ": nbytes ", t.nbytes(),
                                              " does not fit shape ", ShapeToString(shape),
                                              " of ", t.dtype()));
    }
    p->dtypes.push_back(*dtype);
    if (t.nbytes() == 0) continue;
    if (t.file() >= fds->size()) {
      return absl::DataLossError(absl::StrCat("tensor ", t.name(), " in file ", t.file(),
                                              " of ", fds->size()));
    }
    const v1::LocalFile& file = r.files(static_cast<int>(t.file()));
    if (t.offset() > file.size() || t.nbytes() > file.size() - t.offset()) {
      return absl::DataLossError(absl::StrCat("tensor ", t.name(), ": ", t.nbytes(),
                                              " bytes at offset ", t.offset(), " past the end of ",
                                              file.name(), " (", file.size(), " bytes)"));
    }
    lo[t.file()] = std::min(lo[t.file()], t.offset());
    hi[t.file()] = std::max(hi[t.file()], t.offset() + t.nbytes());
  }
  p->mappings.resize(fds->size());
  for (size_t i = 0; i < fds->size(); ++i) {
    const v1::LocalFile& file = r.files(static_cast<int>(i));
    struct stat st;
    if (::fstat((*fds)[i].get(), &st) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot stat the descriptor of ", file.name(), ": ", std::strerror(errno)));
    }
    if (static_cast<uint64_t>(st.st_size) != file.size()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the descriptor of ", file.name(), " has ", st.st_size, " bytes, the layout says ",
          file.size()));
    }
    if (hi[i] == 0) continue;  // only empty tensors in it
    p->mappings[i] = std::make_unique<Mapping>();
    WEIGHTD_RETURN_IF_ERROR(p->mappings[i]->Map((*fds)[i].get(), lo[i], hi[i], file.name()));
    // The descriptor closes here (fds goes out of scope); the mapping keeps
    // the file (or memfd) alive until it is unmapped.
  }
  return absl::OkStatus();
}

// Feeds the mapped tensors to `sink` as a stream would; the sink has
// drained when this returns (the mappings go right after).
absl::Status FeedMapped(const Prepared& p, bool verify, FetchSink* sink) {
  const v1::LocalFetchResponse& r = p.response;
  WEIGHTD_RETURN_IF_ERROR(sink->OnReport(r.report()));
  for (int i = 0; i < r.tensors_size(); ++i) {
    const v1::LocalTensor& t = r.tensors(i);
    v1::TensorHeader header;
    header.set_index(static_cast<uint32_t>(i));
    header.set_name(t.name());
    header.set_source(t.source());
    header.set_dtype(t.dtype());
    *header.mutable_shape() = t.shape();
    header.set_nbytes(t.nbytes());
    header.set_checksum(t.checksum());
    WEIGHTD_RETURN_IF_ERROR(sink->OnHeader(header, p.dtypes[i]));
    const char* data = t.nbytes() == 0 ? nullptr : p.mappings[t.file()]->At(t.offset());
    if (verify) {
      const std::string got = Hex(XXH64(data, t.nbytes(), 0));
      if (got != t.checksum()) {
        return absl::DataLossError(absl::StrCat("tensor ", t.name(),
                                                ": checksum mismatch (mapped bytes hash to ", got,
                                                ", the server says ", t.checksum(), ")"));
      }
    }
    for (uint64_t done = 0; done < t.nbytes();) {
      const uint64_t n = std::min(kSliceBytes, t.nbytes() - done);
      WEIGHTD_RETURN_IF_ERROR(sink->OnMappedChunk(absl::string_view(data + done, n), done));
      done += n;
    }
    WEIGHTD_RETURN_IF_ERROR(sink->OnTensorDone());
  }
  return absl::OkStatus();
}

absl::Status Feed(const Prepared& p, bool verify, FetchSink* sink) {
  absl::Status status = FeedMapped(p, verify, sink);
  sink->Drain();
  return status;
}

void Say(TransportInfo* transport, const char* kind, std::string note) {
  if (transport == nullptr) return;
  transport->transport = kind;
  transport->note = std::move(note);
}

}  // namespace

std::string UnixTargetPath(absl::string_view target) {
  if (!absl::ConsumePrefix(&target, "unix:")) return "";
  // unix:///abs/path and unix:/abs/path name the same socket (gRPC's naming).
  if (absl::StartsWith(target, "//")) target.remove_prefix(2);
  return std::string(target);
}

absl::Status RunFetchAuto(v1::WeightService::Stub* stub, const ClientOptions& options,
                          const v1::FetchRequest& request, FetchSink* sink,
                          TransportInfo* transport) {
  const std::string socket_path = UnixTargetPath(options.target);
  std::string why;
  if (!options.local) {
    why = "the local path is off (ClientOptions.local)";
  } else if (socket_path.empty()) {
    why = "the target is not unix:PATH";
  } else {
    Prepared p;
    v1::LocalFetchRequest local;
    *local.mutable_fetch() = request;
    local.set_checksums(options.verify_local_checksums);
    const absl::Time deadline = absl::Now() + options.deadline;
    absl::Status called = WithRetries(options, [&](bool*) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(deadline));
      return FromGrpcStatus(stub->LocalFetch(&context, local, &p.response));
    });
    // UNIMPLEMENTED: an older server; FAILED_PRECONDITION: not over its
    // Unix socket (or a file it cannot serve: the stream says so again);
    // RESOURCE_EXHAUSTED: its handle table is full, the stream has room.
    if (absl::IsUnimplemented(called) || absl::IsFailedPrecondition(called) ||
        absl::IsResourceExhausted(called)) {
      why = absl::StrCat("LocalFetch refused: ", called.message());
    } else if (!called.ok()) {
      // What Fetch would answer too (unknown model, bad rules, no token...).
      Say(transport, "local", "");
      return called;
    } else if (!p.response.report().ok()) {
      Say(transport, "local", "");
      WEIGHTD_RETURN_IF_ERROR(sink->OnReport(p.response.report()));
      WEIGHTD_ASSIGN_OR_RETURN(MatchReport report, FromProto(p.response.report()));
      return absl::FailedPreconditionError(ErrorSummary(report, kMaxStatusMessageBytes));
    } else {
      absl::Status prepared =
          Prepare(socket_path, std::min(deadline, absl::Now() + kSideChannelTimeout), &p);
      if (prepared.ok()) {
        Say(transport, "local", "");
        return Feed(p, options.verify_local_checksums, sink);
      }
      why = std::string(prepared.message());
    }
  }
  Say(transport, "stream", why);
  return RunFetch(stub, options, request, sink);
}

}  // namespace weightd::client_internal
