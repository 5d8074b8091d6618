#include "client/fetch_stream.h"

#include <grpcpp/grpcpp.h>
#include <xxhash.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "proto/grpc_status.h"
#include "client/convert.h"
#include "core/checkpoint/tensor.h"
#include "core/util/status_macros.h"

namespace weightd::client_internal {
namespace {

std::string Hex(uint64_t value) { return absl::StrCat(absl::Hex(value, absl::kZeroPad16)); }

struct XxhDeleter {
  void operator()(XXH64_state_t* state) const { XXH64_freeState(state); }
};

// One attempt at the stream. `*received` turns true at the first message.
class StreamReader {
 public:
  explicit StreamReader(FetchSink* sink) : sink_(sink), hash_(XXH64_createState()) {}

  absl::Status Handle(const v1::FetchResponse& response) {
    if (!report_seen_) {
      if (!response.has_report()) return Broken("the stream does not start with a report");
      report_seen_ = true;
      return sink_->OnReport(response.report());
    }
    if (awaiting_trailer_) {
      if (!response.has_trailer()) {
        return Broken("its header had no checksum and no checksum trailer followed its data");
      }
      return Trailer(response.trailer());
    }
    if (response.has_trailer()) return Broken("a checksum trailer that no tensor awaits");
    if (response.has_header()) {
      if (in_tensor_) return Broken("a tensor header arrived before the previous tensor's end");
      WEIGHTD_RETURN_IF_ERROR(BeginTensor(response.header()));
      return header_.nbytes() == 0 ? FinishTensor() : absl::OkStatus();
    }
    if (response.has_chunk()) return Chunk(response.chunk());
    return Broken("unexpected message in the stream");
  }

  // After the stream ended well: the last tensor must be complete.
  absl::Status Finish() {
    if (!report_seen_) return Broken("the stream ended before its report");
    if (awaiting_trailer_) return Broken("the stream ended before the tensor's checksum trailer");
    if (in_tensor_) {
      return Broken(absl::StrCat("only ", received_, " of ", header_.nbytes(), " bytes arrived"));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Broken(absl::string_view why) const {
    return absl::DataLossError(absl::StrCat(
        "Fetch stream broken",
        in_tensor_ ? absl::StrCat(" at tensor ", header_.name()) : std::string(), ": ", why));
  }

  absl::Status BeginTensor(const v1::TensorHeader& header) {
    if (header.index() != next_index_) {
      return Broken(absl::StrCat("tensor index ", header.index(), ", expected ", next_index_));
    }
    header_ = header;
    in_tensor_ = true;
    absl::StatusOr<DType> dtype = ParseDType(header.dtype());
    if (!dtype.ok()) return Broken(absl::StrCat("unknown dtype \"", header.dtype(), "\""));
    std::vector<int64_t> shape(header.shape().begin(), header.shape().end());
    absl::StatusOr<int64_t> numel = CheckedNumel(shape);
    if (!numel.ok() || static_cast<uint64_t>(*numel) * DTypeSize(*dtype) != header.nbytes()) {
      return Broken(absl::StrCat("nbytes ", header.nbytes(), " does not fit shape ",
                                 ShapeToString(shape), " of ", header.dtype()));
    }
    received_ = 0;
    XXH64_reset(hash_.get(), 0);
    return sink_->OnHeader(header, *dtype);
  }

  absl::Status Chunk(const v1::TensorChunk& chunk) {
    if (!in_tensor_ || chunk.index() != header_.index()) {
      return Broken(absl::StrCat("chunk of tensor ", chunk.index(), " out of place"));
    }
    if (chunk.offset() != received_ || chunk.data().size() > header_.nbytes() - received_) {
      return Broken(absl::StrCat("chunk at offset ", chunk.offset(), " of ", chunk.data().size(),
                                 " bytes; ", received_, " of ", header_.nbytes(),
                                 " bytes received"));
    }
    XXH64_update(hash_.get(), chunk.data().data(), chunk.data().size());
    received_ += chunk.data().size();
    WEIGHTD_RETURN_IF_ERROR(sink_->OnChunk(chunk.data(), chunk.offset()));
    // A tensor is done at its last byte, not at the next header: a stream
    // that fails later must still count it as written.
    return received_ == header_.nbytes() ? FinishTensor() : absl::OkStatus();
  }

  // All bytes arrived: check them against the header's checksum, or, when
  // it had none (FetchRequest.checksum_trailer), against the trailer to come.
  absl::Status FinishTensor() {
    got_ = Hex(XXH64_digest(hash_.get()));
    if (header_.checksum().empty()) {
      awaiting_trailer_ = true;
      return absl::OkStatus();
    }
    return Verified(header_.checksum(), "the server says");
  }

  absl::Status Trailer(const v1::TensorTrailer& trailer) {
    if (trailer.index() != header_.index()) {
      return Broken(absl::StrCat("checksum trailer of tensor ", trailer.index(), ", expected ",
                                 header_.index()));
    }
    awaiting_trailer_ = false;
    return Verified(trailer.checksum(), "the server's trailer says");
  }

  absl::Status Verified(const std::string& want, absl::string_view who) {
    if (got_ != want) {
      return absl::DataLossError(absl::StrCat("tensor ", header_.name(),
                                              ": checksum mismatch (received bytes hash to ", got_,
                                              ", ", who, " ", want, ")"));
    }
    in_tensor_ = false;
    ++next_index_;
    return sink_->OnTensorDone();
  }

  FetchSink* sink_;
  std::unique_ptr<XXH64_state_t, XxhDeleter> hash_;
  bool report_seen_ = false;
  bool in_tensor_ = false;
  // The current tensor's bytes are all in (their hash in got_); its header
  // had no checksum, so a TensorTrailer must come next.
  bool awaiting_trailer_ = false;
  std::string got_;
  uint32_t next_index_ = 0;
  v1::TensorHeader header_;
  uint64_t received_ = 0;
};

}  // namespace

absl::Status RunFetch(v1::WeightService::Stub* stub, const ClientOptions& options,
                      const v1::FetchRequest& fetch, FetchSink* sink) {
  // Checksums may follow the data, so the first byte does not wait for the
  // server to hash a tensor first (StreamReader takes either form; servers
  // older than the field send header checksums).
  v1::FetchRequest request = fetch;
  request.set_checksum_trailer(true);
  return WithRetries(options, [&](bool* retryable) -> absl::Status {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
    std::unique_ptr<grpc::ClientReader<v1::FetchResponse>> reader = stub->Fetch(&context, request);
    StreamReader stream(sink);
    v1::FetchResponse response;
    absl::Status status;
    bool received = false;
    while (reader->Read(&response)) {
      received = true;
      status = stream.Handle(response);
      if (!status.ok()) {
        // Stop the server's side too, then report our reason.
        context.TryCancel();
        while (reader->Read(&response)) {
        }
        (void)reader->Finish();
        *retryable = false;
        return status;
      }
    }
    *retryable = !received;
    WEIGHTD_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
    return stream.Finish();
  });
}

}  // namespace weightd::client_internal
