#include "client/fetch_stream.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <grpcpp/support/byte_buffer.h>
#include <xxhash.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
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
    if (response.has_header()) {
      if (in_tensor_) return Broken("a tensor header arrived before the previous tensor's end");
      WEIGHTD_RETURN_IF_ERROR(BeginTensor(response.header()));
      return header_.nbytes() == 0 ? FinishTensor() : absl::OkStatus();
    }
    if (response.has_chunk()) {
      return Chunk(response.chunk().index(), response.chunk().offset(), response.chunk().data());
    }
    return Broken("unexpected message in the stream");
  }

  // The next bytes of tensor `index`, from a parsed chunk or, in pieces,
  // straight from the received slices.
  absl::Status Chunk(uint64_t index, uint64_t offset, absl::string_view data) {
    if (!report_seen_) return Broken("the stream does not start with a report");
    if (!in_tensor_ || index != header_.index()) {
      return Broken(absl::StrCat("chunk of tensor ", index, " out of place"));
    }
    if (offset != received_ || data.size() > header_.nbytes() - received_) {
      return Broken(absl::StrCat("chunk at offset ", offset, " of ", data.size(), " bytes; ",
                                 received_, " of ", header_.nbytes(), " bytes received"));
    }
    XXH64_update(hash_.get(), data.data(), data.size());
    received_ += data.size();
    WEIGHTD_RETURN_IF_ERROR(sink_->OnChunk(data, offset));
    // A tensor is done at its last byte, not at the next header: a stream
    // that fails later must still count it as written.
    return received_ == header_.nbytes() ? FinishTensor() : absl::OkStatus();
  }

  // After the stream ended well: the last tensor must be complete.
  absl::Status Finish() {
    if (!report_seen_) return Broken("the stream ended before its report");
    if (in_tensor_) {
      return Broken(absl::StrCat("only ", received_, " of ", header_.nbytes(), " bytes arrived"));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Broken(absl::string_view why) const {
    return absl::DataLossError(
        absl::StrCat("Fetch stream broken", in_tensor_ ? absl::StrCat(" at tensor ", header_.name())
                                                      : std::string(),
                     ": ", why));
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
    if (!numel.ok() ||
        static_cast<uint64_t>(*numel) * DTypeSize(*dtype) != header.nbytes()) {
      return Broken(absl::StrCat("nbytes ", header.nbytes(), " does not fit shape ",
                                 ShapeToString(shape), " of ", header.dtype()));
    }
    received_ = 0;
    XXH64_reset(hash_.get(), 0);
    return sink_->OnHeader(header, *dtype);
  }

  absl::Status FinishTensor() {
    const std::string got = Hex(XXH64_digest(hash_.get()));
    if (got != header_.checksum()) {
      return absl::DataLossError(absl::StrCat("tensor ", header_.name(),
                                              ": checksum mismatch (received bytes hash to ", got,
                                              ", the server says ", header_.checksum(), ")"));
    }
    in_tensor_ = false;
    ++next_index_;
    return sink_->OnTensorDone();
  }

  FetchSink* sink_;
  std::unique_ptr<XXH64_state_t, XxhDeleter> hash_;
  bool report_seen_ = false;
  bool in_tensor_ = false;
  uint32_t next_index_ = 0;
  v1::TensorHeader header_;
  uint64_t received_ = 0;
};

// Reads bytes and varints across the slices of a received message.
class SliceCursor {
 public:
  explicit SliceCursor(const std::vector<grpc::Slice>* slices) : slices_(slices) {}

  bool Byte(uint8_t* out) {
    while (slice_ < slices_->size() && pos_ == (*slices_)[slice_].size()) Next();
    if (slice_ == slices_->size()) return false;
    *out = (*slices_)[slice_].begin()[pos_++];
    return true;
  }
  bool Varint(uint64_t* out) {
    *out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!Byte(&b)) return false;
      *out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  // The next `n` bytes as views into the slices, in order.
  bool Take(uint64_t n, std::vector<absl::string_view>* pieces) {
    while (n > 0) {
      while (slice_ < slices_->size() && pos_ == (*slices_)[slice_].size()) Next();
      if (slice_ == slices_->size()) return false;
      const grpc::Slice& s = (*slices_)[slice_];
      const size_t k = std::min<uint64_t>(n, s.size() - pos_);
      pieces->emplace_back(reinterpret_cast<const char*>(s.begin()) + pos_, k);
      pos_ += k;
      n -= k;
    }
    return true;
  }
  bool AtEnd() {
    uint8_t unused;
    return !Byte(&unused);
  }

 private:
  void Next() {
    ++slice_;
    pos_ = 0;
  }
  const std::vector<grpc::Slice>* slices_;
  size_t slice_ = 0;
  size_t pos_ = 0;
};

// A FetchResponse that is a TensorChunk, decoded without copying its data:
// the pieces point into the received slices. False for anything else (then
// the message is parsed as a proto).
struct RawChunk {
  uint64_t index = 0;
  uint64_t offset = 0;
  std::vector<absl::string_view> pieces;
};

bool DecodeChunk(const std::vector<grpc::Slice>& slices, RawChunk* chunk) {
  SliceCursor in(&slices);
  uint8_t tag;
  uint64_t length;
  // FetchResponse.chunk = 3 (LEN), then TensorChunk's fields in order.
  if (!in.Byte(&tag) || tag != ((3 << 3) | 2) || !in.Varint(&length)) return false;
  bool have_data = false;
  while (in.Byte(&tag)) {
    if (tag == ((1 << 3) | 0) && !have_data) {
      if (!in.Varint(&chunk->index)) return false;
    } else if (tag == ((2 << 3) | 0) && !have_data) {
      if (!in.Varint(&chunk->offset)) return false;
    } else if (tag == ((3 << 3) | 2) && !have_data) {
      uint64_t n;
      if (!in.Varint(&n) || !in.Take(n, &chunk->pieces)) return false;
      have_data = true;
    } else {
      return false;  // unusual layout: leave it to the proto parser
    }
  }
  return have_data;
}

}  // namespace

absl::Status RunFetch(grpc::ChannelInterface* channel, const ClientOptions& options,
                      const v1::FetchRequest& request, FetchSink* sink) {
  // A raw reader of the same method: chunk data is copied once, from the
  // received slices into its destination, instead of first into a proto.
  static const grpc::internal::RpcMethod kFetch("/weightd.v1.WeightService/Fetch",
                                                grpc::internal::RpcMethod::SERVER_STREAMING);
  return WithRetries(options, [&](bool* retryable) -> absl::Status {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
    std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
        grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel, kFetch, &context,
                                                                       request));
    StreamReader stream(sink);
    grpc::ByteBuffer message;
    std::vector<grpc::Slice> slices;
    v1::FetchResponse response;
    absl::Status status;
    bool received = false;
    while (reader->Read(&message)) {
      received = true;
      slices.clear();
      RawChunk chunk;
      if (message.Dump(&slices).ok() && DecodeChunk(slices, &chunk)) {
        uint64_t offset = chunk.offset;
        for (absl::string_view piece : chunk.pieces) {
          status = stream.Chunk(chunk.index, offset, piece);
          if (!status.ok()) break;
          offset += piece.size();
        }
      } else if (!grpc::SerializationTraits<v1::FetchResponse>::Deserialize(&message, &response)
                      .ok()) {
        status = absl::DataLossError("Fetch stream broken: a message does not parse");
      } else {
        status = stream.Handle(response);
      }
      if (!status.ok()) {
        // Stop the server's side too, then report our reason.
        context.TryCancel();
        while (reader->Read(&message)) {
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
