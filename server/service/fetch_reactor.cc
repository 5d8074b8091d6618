#include "server/service/fetch_reactor.h"

#include <grpcpp/impl/codegen/proto_utils.h>
#include <xxhash.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/match/match.h"
#include "server/cache/dtype_cast.h"
#include "server/service/convert.h"
#include "proto/grpc_status.h"

namespace weightd {
namespace {

// A failed Fetch's status message: well under the 8 KiB metadata limit that
// gRPC clients default to (the errors are whole in the report).
constexpr size_t kMaxStatusMessageBytes = 2048;

grpc::ByteBuffer Serialize(const v1::FetchResponse& response) {
  std::string bytes = response.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// Destroy callback of a data slice: drops its reference to the memory.
void DropReference(void* keepalive) { delete static_cast<std::shared_ptr<const void>*>(keepalive); }

}  // namespace

FetchReactor::FetchReactor(ModelStore* store, WorkPool* pool,
                           grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                           const RequestLimits* limits, std::function<void()> on_done)
    : on_done_(std::move(on_done)) {
  auto start = [this, store, context, request, limits] {
    absl::MutexLock lock(&mu_);
    starting_ = false;
    absl::Status status = cancelled_ ? absl::CancelledError("cancelled while starting")
                                     : Begin(store, context, request, limits);
    if (!status.ok()) {
      FinishOnce(ToGrpcStatus(status));
      return;
    }
    Continue();
  };
  if (pool == nullptr) {
    start();
  } else {
    pool->Post(std::move(start));
  }
}

absl::Status FetchReactor::Begin(ModelStore* store, grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request, const RequestLimits* limits) {
  v1::FetchRequest parsed;
  grpc::ByteBuffer copy(*request);
  grpc::Status s = grpc::SerializationTraits<v1::FetchRequest>::Deserialize(&copy, &parsed);
  if (!s.ok()) return absl::InvalidArgumentError("FetchRequest does not parse");
  if (limits != nullptr) {
    absl::Status within = CheckFetchRequest(parsed, *limits);
    if (!within.ok()) return within;
  }
  absl::StatusOr<uint32_t> chunk_bytes =
      EffectiveChunkBytes(parsed.chunk_bytes(), parsed.max_receive_bytes());
  if (!chunk_bytes.ok()) return chunk_bytes.status();
  chunk_bytes_ = *chunk_bytes;
  trailer_ = parsed.checksum_trailer();
  absl::StatusOr<v1::ModelConfig> config = store->Config(parsed.model());
  if (!config.ok()) return config.status();
  absl::StatusOr<FetchSpec> spec = FromProto(parsed, *config);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<std::shared_ptr<const Snapshot>> snapshot =
      store->Acquire(parsed.model(), parsed.version(), absl::FromChrono(context->deadline()));
  if (!snapshot.ok()) return snapshot.status();
  snapshot_ = *std::move(snapshot);
  version_ = snapshot_->version();
  absl::StatusOr<std::shared_ptr<const StateDictView>> view = snapshot_->View(parsed.select());
  if (!view.ok()) return view.status();
  view_ = *std::move(view);
  // The device copy holds the default view only.
  if (view_ == snapshot_->default_view()) residency_ = store->ResidencyForFetch(snapshot_);
  absl::StatusOr<FetchPlan> plan = PlanFetch(*view_, *spec);
  if (!plan.ok()) return plan.status();
  plan_ = *std::move(plan);
  if (residency_ != nullptr && plan_.report.ok()) {
    std::vector<int> indices;
    from_device_.assign(plan_.tensors.size(), false);
    for (size_t i = 0; i < plan_.tensors.size(); ++i) {
      const PlannedTensor& planned = plan_.tensors[i];
      const TensorRecord& record = view_->tensors()[planned.index].second;
      // Casts are computed on the host copy; empty tensors have no bytes.
      if (planned.send_dtype == record.dtype && record.nbytes() > 0) {
        from_device_[i] = true;
        indices.push_back(planned.index);
      }
    }
    if (!indices.empty()) {
      reader_ = std::make_unique<DeviceReader>(residency_, std::move(indices), chunk_bytes_);
    }
  }
  return absl::OkStatus();
}

void FetchReactor::Continue() {
  if (finished_) return;
  if (cancelled_) {
    FinishOnce(grpc::Status::CANCELLED);
    return;
  }
  absl::StatusOr<bool> more = NextMessage();
  if (!more.ok()) {
    FinishOnce(ToGrpcStatus(more.status()));
    return;
  }
  if (!*more) {
    // Everything is sent: let the device copy go before the client hears
    // the status, so that the GPU tier may evict it from then on.
    reader_.reset();
    residency_.reset();
    if (!plan_.report.ok()) {
      // The report went first, so the client can show why; the status
      // message is bounded because it travels in metadata.
      FinishOnce(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                              ErrorSummary(plan_.report, kMaxStatusMessageBytes)));
    } else {
      FinishOnce(grpc::Status::OK);
    }
    return;
  }
  writing_ = true;
  StartWrite(&message_);
}

absl::StatusOr<bool> FetchReactor::NextMessage() {
  if (!report_sent_) {
    report_sent_ = true;
    v1::FetchResponse response;
    ToProto(plan_.report, version_, response.mutable_report());
    message_ = Serialize(response);
    return true;
  }
  // A failing load sends its report and nothing else.
  if (!plan_.report.ok()) return false;
  while (tensor_ < plan_.tensors.size()) {
    const PlannedTensor& planned = plan_.tensors[tensor_];
    if (!header_sent_) {
      v1::FetchResponse response;
      v1::TensorHeader* header = response.mutable_header();
      absl::Status status = PrepareTensor(planned, header);
      if (!status.ok()) {
        return absl::Status(status.code(),
                            absl::StrCat("tensor \"", planned.source, "\": ", status.message()));
      }
      header->set_index(static_cast<uint32_t>(tensor_));
      header_sent_ = true;
      offset_ = 0;
      message_ = Serialize(response);
      return true;
    }
    const bool from_device = reader_ != nullptr && from_device_[tensor_];
    if (from_device && device_offset_ < reader_->size(device_tensor_)) {
      absl::StatusOr<StagedChunk> chunk = reader_->Next();
      if (chunk.ok() && (chunk->tensor != device_tensor_ || chunk->offset != device_offset_ ||
                         chunk->bytes.empty())) {
        chunk = absl::InternalError("device reader out of step with the plan");
      }
      if (!chunk.ok()) {
        return absl::Status(chunk.status().code(),
                            absl::StrCat("tensor \"", planned.source, "\" from ",
                                         residency_->tier(), ": ", chunk.status().message()));
      }
      std::string prefix =
          EncodeChunkPrefix(static_cast<uint32_t>(tensor_), device_offset_, chunk->bytes.size());
      device_offset_ += chunk->bytes.size();
      grpc::Slice slices[2] = {
          grpc::Slice(prefix),
          grpc::Slice(const_cast<uint8_t*>(chunk->bytes.data()), chunk->bytes.size(),
                      &DropReference, new std::shared_ptr<const void>(std::move(chunk->lease))),
      };
      message_ = grpc::ByteBuffer(slices, 2);
      return true;
    }
    if (!from_device && offset_ < bytes_.size()) {
      const uint64_t n = std::min<uint64_t>(chunk_bytes_, bytes_.size() - offset_);
      std::string prefix = EncodeChunkPrefix(static_cast<uint32_t>(tensor_), offset_, n);
      grpc::Slice slices[2] = {
          grpc::Slice(prefix),
          grpc::Slice(const_cast<uint8_t*>(bytes_.data() + offset_), n, &DropReference,
                      new std::shared_ptr<const void>(keepalive_)),
      };
      message_ = grpc::ByteBuffer(slices, 2);
      if (hashing_) XXH64_update(hash_.get(), bytes_.data() + offset_, n);
      offset_ += n;
      return true;
    }
    if (hashing_) {
      hashing_ = false;
      const uint64_t checksum = XXH64_digest(hash_.get());
      // Only zero-copy tensors are hashed here: the bytes sent are the
      // stored ones, so this is the manifest's checksum too.
      view_->RememberChecksum(planned.index, checksum);
      v1::FetchResponse response;
      v1::TensorTrailer* trailer = response.mutable_trailer();
      trailer->set_index(static_cast<uint32_t>(tensor_));
      trailer->set_checksum(absl::StrCat(absl::Hex(checksum, absl::kZeroPad16)));
      message_ = Serialize(response);
      return true;
    }
    if (from_device) {
      ++device_tensor_;
      device_offset_ = 0;
    }
    ++tensor_;
    header_sent_ = false;
    bytes_ = {};
    keepalive_.reset();
  }
  return false;
}

absl::Status FetchReactor::PrepareTensor(const PlannedTensor& planned, v1::TensorHeader* header) {
  const TensorRecord& record = view_->tensors()[planned.index].second;
  std::optional<uint64_t> checksum;
  if (reader_ != nullptr && from_device_[tensor_]) {
    // From the device: row-major there whatever the host strides; the
    // checksum was taken at upload.
    bytes_ = {};
    keepalive_.reset();
    checksum = view_->Checksum(planned.index);
    header->set_nbytes(reader_->size(device_tensor_));
  } else if (planned.send_dtype == record.dtype && record.is_contiguous()) {
    // Zero-copy: slices point into the mmap; the snapshot keeps it mapped.
    bytes_ = record.nbytes() == 0 ? absl::Span<const uint8_t>()
                                  : absl::Span<const uint8_t>(record.data(), record.nbytes());
    keepalive_ = snapshot_;
    if (!trailer_ || bytes_.empty()) {
      checksum = view_->Checksum(planned.index);
    } else if (!(checksum = view_->KnownChecksum(planned.index))) {
      if (hash_ == nullptr) hash_.reset(XXH64_createState());
      XXH64_reset(hash_.get(), 0);
      hashing_ = true;
    }
  } else {
    auto scratch = std::make_shared<std::vector<uint8_t>>();
    std::vector<uint8_t> strided;
    absl::Span<const uint8_t> row_major = record.ContiguousBytes(&strided);
    if (planned.send_dtype == record.dtype) {
      if (row_major.data() == strided.data()) {
        *scratch = std::move(strided);
      } else {
        scratch->assign(row_major.begin(), row_major.end());
      }
    } else {
      absl::Status status = CastBytes(row_major, record.dtype, planned.send_dtype, scratch.get());
      if (!status.ok()) return status;
    }
    bytes_ = absl::Span<const uint8_t>(scratch->data(), scratch->size());
    if (planned.send_dtype != record.dtype) {
      checksum = XXH64(scratch->data(), scratch->size(), 0);
    } else if (!(checksum = view_->KnownChecksum(planned.index))) {
      // The row-major copy of a strided tensor: the manifest's checksum.
      checksum = XXH64(scratch->data(), scratch->size(), 0);
      view_->RememberChecksum(planned.index, *checksum);
    }
    keepalive_ = std::move(scratch);
  }
  header->set_name(planned.name);
  header->set_source(planned.source);
  header->set_dtype(std::string(DTypeName(planned.send_dtype)));
  header->mutable_shape()->Add(record.shape.begin(), record.shape.end());
  if (reader_ == nullptr || !from_device_[tensor_]) header->set_nbytes(bytes_.size());
  // Empty: a TensorTrailer brings it after the data.
  if (checksum) header->set_checksum(absl::StrCat(absl::Hex(*checksum, absl::kZeroPad16)));
  return absl::OkStatus();
}

void FetchReactor::HashDeleter::operator()(XXH64_state_s* state) const { XXH64_freeState(state); }

void FetchReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok) {
    // The stream broke (client gone or deadline): nothing more can be sent.
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
    return;
  }
  Continue();
}

void FetchReactor::OnCancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (!writing_ && !starting_) FinishOnce(grpc::Status::CANCELLED);
}

void FetchReactor::FinishOnce(const grpc::Status& status) {
  if (finished_) return;
  finished_ = true;
  Finish(status);
}

void FetchReactor::OnDone() {
  // FinishOnce calls Finish under mu_, and gRPC may run OnDone on another
  // thread before that caller's MutexLock has let go: deleting now would free
  // the mutex under its Unlock (found by TSan). Taking mu_ waits it out;
  // nothing touches this reactor after that unlock.
  { absl::MutexLock lock(&mu_); }
  if (on_done_) on_done_();
  delete this;
}

}  // namespace weightd
