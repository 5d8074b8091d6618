// Client::Load: streams matched tensors straight into a module's parameters
// and buffers. Over a unix: target the bytes come from read-only mappings of
// the server's descriptors instead (client/local_fetch.h): the same sink, fed
// one memcpy per tensor from the page cache into the parameter.
//
// Memory: a contiguous CPU destination of the dtype sent gets each chunk
// memcpy'd into place; another dtype is converted chunk by chunk (copy_ on
// the chunk's whole elements). A CUDA destination gets its bytes through the
// staging ring (client/cuda_staging.h): pinned slots, cudaMemcpyAsync on the
// load's own stream, straight into the parameter's memory when it is
// contiguous and of the dtype sent. Otherwise (another dtype, not
// contiguous, a staged load) the bytes land as sent in a contiguous device
// tensor of the source dtype, and one copy_ on the same stream converts or
// scatters them at the tensor's end: converting there is a kernel at device
// bandwidth, where converting on the host would cost the receiving thread a
// pass over every element. Extra memory is thus a few chunks (host) plus, on
// the device, one such tensor at a time; a non-contiguous CPU destination
// costs a whole tensor of host scratch, a staged load a copy of every
// matched tensor (on its device).
#include <ATen/Parallel.h>
#include <torch/utils.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/client_impl.h"
#include "client/convert.h"
#include "client/cuda_staging.h"
#include "client/fetch_stream.h"
#include "client/local_fetch.h"
#include "client/parallel_copy.h"
#include "client/staging_ring.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

using client_internal::CudaStager;
using client_internal::FetchSink;
using client_internal::ParallelCopier;
using client_internal::StagingRingShape;

class LoadSink : public FetchSink {
 public:
  LoadSink(const LoadOptions& options, std::optional<DType> cast,
           absl::flat_hash_map<std::string, torch::Tensor> targets, StagingRingShape ring,
           LoadReport* report)
      : options_(options),
        cast_(cast),
        targets_(std::move(targets)),
        ring_(ring),
        report_(report),
        copier_(options.copy_threads > 0 ? options.copy_threads : at::get_num_threads()) {}

  absl::Status OnReport(const v1::MatchReport& proto) override {
    WEIGHTD_ASSIGN_OR_RETURN(MatchReport report, client_internal::FromProto(proto));
    report_->version = proto.version();
    report_->missing_keys = std::move(report.missing_keys);
    report_->unexpected_keys = std::move(report.unexpected_keys);
    report_->mismatched = std::move(report.mismatched);
    report_->inferred_rules = std::move(report.inferred_rules);
    report_->errors = std::move(report.errors);
    expected_tensors_ = report.matched.size();
    total_bytes_ = 0;
    for (const MatchedPair& m : report.matched) {
      const uint64_t size = DTypeSize(cast_.value_or(m.source_dtype));
      total_bytes_ += size == 0 ? 0 : m.bytes / DTypeSize(m.source_dtype) * size;
    }
    return absl::OkStatus();
  }

  absl::Status OnHeader(const v1::TensorHeader& header, DType dtype) override {
    auto it = targets_.find(header.name());
    if (it == targets_.end()) {
      return absl::DataLossError(
          absl::StrCat("the server sent tensor ", header.name(), ", which the module lacks"));
    }
    name_ = header.name();
    dest_ = it->second;
    const std::vector<int64_t> shape(header.shape().begin(), header.shape().end());
    if (dest_.sizes().vec() != shape) {
      return absl::DataLossError(absl::StrCat("the server sent ", name_, " with shape ",
                                              ShapeToString(shape), ", the module has ",
                                              ShapeToString(dest_.sizes().vec())));
    }
    absl::StatusOr<c10::ScalarType> type = ToScalarType(dtype, name_);
    if (!type.ok()) return type.status();
    src_type_ = *type;
    elem_size_ = DTypeSize(dtype);
    elements_ = 0;
    carry_.clear();
    stager_ = nullptr;
    if (dest_.is_cuda() && CudaStager::Built()) {
      WEIGHTD_ASSIGN_OR_RETURN(stager_, StagerFor(dest_.device()));
    }
    return Torch([&] {
      const torch::TensorOptions as_sent = torch::TensorOptions().dtype(src_type_);
      if (dest_.is_cpu()) {
        work_ = !options_.staged && dest_.is_contiguous()
                    ? dest_
                    : torch::empty_like(dest_, torch::MemoryFormat::Contiguous);
      } else if (stager_ != nullptr) {
        if (!options_.staged && dest_.is_contiguous() && dest_.scalar_type() == src_type_) {
          work_ = dest_;
        } else {
          stager_->OnStream(
              [&] { work_ = torch::empty(dest_.sizes(), as_sent.device(dest_.device())); });
        }
        stager_->BeginTensor(work_.data_ptr(), work_.nbytes());
      } else {
        // A device without the ring: host bytes, one copy_ at the end.
        work_ = torch::empty(dest_.sizes(), as_sent);
      }
      if (options_.staged) staged_.push_back({name_, dest_, work_, stager_});
      direct_ = work_.is_cpu() && work_.scalar_type() == src_type_;
      flat_ = work_.view({-1});
    });
  }

  absl::Status OnChunk(absl::string_view data, uint64_t offset) override {
    report_->bytes += data.size();
    if (options_.progress) options_.progress(report_->bytes, total_bytes_);
    if (stager_ != nullptr) return Torch([&] { stager_->Write(data); });
    if (direct_) {
      // A stream's chunk: copied now (its buffer goes when this returns).
      copier_.Copy(static_cast<char*>(work_.data_ptr()) + offset, data.data(), data.size());
      return absl::OkStatus();
    }
    return Torch([&] {
      // Chunks need not end on an element boundary: complete a carried
      // partial element first, carry the tail.
      if (!carry_.empty()) {
        const size_t take = std::min(elem_size_ - carry_.size(), data.size());
        carry_.append(data.data(), take);
        data.remove_prefix(take);
        if (carry_.size() == elem_size_) {
          CopyElements(carry_.data(), 1);
          carry_.clear();
        }
      }
      const size_t whole = data.size() / elem_size_;
      if (whole > 0) CopyElements(data.data(), whole);
      data.remove_prefix(whole * elem_size_);
      carry_.append(data.data(), data.size());
    });
  }

  // The local path's bytes stay mapped until Drain: a CPU destination of the
  // dtype sent gets its copy queued, split over the copy threads, and the
  // loading thread goes on to the next tensor meanwhile.
  absl::Status OnMappedChunk(absl::string_view data, uint64_t offset) override {
    if (!direct_ || stager_ != nullptr) return OnChunk(data, offset);
    report_->bytes += data.size();
    if (options_.progress) options_.progress(report_->bytes, total_bytes_);
    copier_.Submit(static_cast<char*>(work_.data_ptr()) + offset, data.data(), data.size());
    return absl::OkStatus();
  }

  void Drain() override { copier_.Wait(); }

  absl::Status OnTensorDone() override {
    if (stager_ != nullptr) WEIGHTD_RETURN_IF_ERROR(Torch([&] { stager_->EndTensor(); }));
    if (!options_.staged) {
      if (!work_.is_same(dest_)) {
        // A scratch tensor (a non-contiguous destination): its queued
        // bytes must be in before it is scattered.
        copier_.Wait();
        WEIGHTD_RETURN_IF_ERROR(Torch([&] { CopyInto(dest_, work_, stager_); }));
      }
      report_->written.push_back(name_);
      ++report_->tensors;
    }
    ++received_tensors_;
    work_ = flat_ = dest_ = torch::Tensor();
    stager_ = nullptr;
    return absl::OkStatus();
  }

  // After the stream ended well.
  absl::Status Commit() {
    if (received_tensors_ != expected_tensors_) {
      return absl::DataLossError(absl::StrCat("the stream ended after ", received_tensors_, " of ",
                                              expected_tensors_, " tensors"));
    }
    if (!options_.staged) return absl::OkStatus();
    return Torch([&] {
      for (Staged& s : staged_) {
        CopyInto(s.dest, s.staged, s.stager);
        report_->written.push_back(s.name);
        ++report_->tensors;
      }
    });
  }

  // Waits for every device copy; after a failure too, so that what
  // `written` lists holds its bytes when Load returns.
  absl::Status Finish() {
    absl::Status status;
    for (const std::unique_ptr<CudaStager>& stager : stagers_) {
      if (stager == nullptr) continue;
      status.Update(stager->Finish());
      report_->staging_copies += stager->flushes();
      report_->staging_waits += stager->waits();
    }
    return status;
  }

  size_t expected_tensors() const { return expected_tensors_; }

 private:
  // The one boundary where LibTorch may throw.
  template <typename Fn>
  absl::Status Torch(Fn fn) {
    try {
      fn();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("LibTorch, at tensor ", name_, ": ", e.what()));
    }
  }

  // Host conversion into a CPU destination (work_ is CPU here).
  void CopyElements(const char* data, size_t n) {
    const int64_t count = static_cast<int64_t>(n);
    torch::Tensor src =
        torch::from_blob(const_cast<char*>(data), {count}, torch::TensorOptions().dtype(src_type_));
    flat_.narrow(0, elements_, count).copy_(src);
    elements_ += count;
  }

  // `from` (received bytes) into `dest`, converting and scattering as
  // copy_ does; on the stager's stream when it came through the ring, so it
  // runs after that tensor's copies.
  static void CopyInto(torch::Tensor& dest, const torch::Tensor& from, CudaStager* stager) {
    if (stager != nullptr) {
      stager->OnStream([&] { dest.copy_(from, /*non_blocking=*/true); });
    } else {
      dest.copy_(from);
    }
  }

  // One stager per CUDA device the module uses, made at its first tensor.
  absl::StatusOr<CudaStager*> StagerFor(const torch::Device& device) {
    WEIGHTD_ASSIGN_OR_RETURN(c10::DeviceIndex index, CudaStager::Resolve(device, "Load into"));
    if (stagers_.size() <= static_cast<size_t>(index)) stagers_.resize(index + 1);
    if (stagers_[index] == nullptr) {
      WEIGHTD_ASSIGN_OR_RETURN(stagers_[index], CudaStager::Create(index, ring_));
    }
    return stagers_[index].get();
  }

  const LoadOptions& options_;
  const std::optional<DType> cast_;  // what the server casts to, if anything
  uint64_t total_bytes_ = 0;
  absl::flat_hash_map<std::string, torch::Tensor> targets_;
  const StagingRingShape ring_;
  LoadReport* report_;
  size_t expected_tensors_ = 0;
  size_t received_tensors_ = 0;
  ParallelCopier copier_;

  // The tensor being received.
  std::string name_;
  torch::Tensor dest_;            // the parameter or buffer
  torch::Tensor work_;            // where bytes land: dest_, a staging or scratch tensor
  torch::Tensor flat_;            // work_ as 1-d
  CudaStager* stager_ = nullptr;  // dest_'s, when it is on a CUDA device
  bool direct_ = false;
  c10::ScalarType src_type_ = torch::kFloat32;
  size_t elem_size_ = 1;
  int64_t elements_ = 0;
  std::string carry_;

  // Indexed by CUDA device; declared before staged_ so that they outlive
  // it: their destructors wait for the copies into the staged tensors.
  std::vector<std::unique_ptr<CudaStager>> stagers_;
  struct Staged {
    std::string name;
    torch::Tensor dest;
    torch::Tensor staged;  // CPU: dest's dtype; device: the dtype sent
    CudaStager* stager;
  };
  std::vector<Staged> staged_;
};

std::string DescribeWritten(const LoadReport& report, size_t expected, bool staged) {
  if (staged && report.written.empty()) return "; staged load: the module was not changed";
  if (report.written.empty()) return "; no tensor was written";
  std::vector<std::string> shown(
      report.written.begin(), report.written.begin() + std::min<size_t>(8, report.written.size()));
  return absl::StrCat("; ", report.written.size(), " of ", expected,
                      " tensors were written before the failure: ", absl::StrJoin(shown, ", "),
                      report.written.size() > shown.size() ? ", ..." : "");
}

bool AnyCuda(const absl::flat_hash_map<std::string, torch::Tensor>& targets) {
  for (const auto& [name, t] : targets) {
    if (t.defined() && t.is_cuda()) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<LoadReport> Client::Load(torch::nn::Module& module, const std::string& model,
                                        const LoadOptions& options) {
  LoadReport report;
  WEIGHTD_RETURN_IF_ERROR(Load(module, model, options, &report));
  return report;
}

absl::Status Client::Load(torch::nn::Module& module, const std::string& model,
                          const LoadOptions& options, LoadReport* report) {
  const absl::Time start = absl::Now();
  *report = LoadReport();
  WEIGHTD_ASSIGN_OR_RETURN(std::vector<TensorEntry> target, ModuleEntries(module));
  absl::flat_hash_map<std::string, torch::Tensor> targets;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (item.value().defined()) targets[item.key()] = item.value();
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    if (item.value().defined()) targets[item.key()] = item.value();
  }

  v1::FetchRequest request;
  request.set_model(model);
  request.set_version(options.version);
  request.set_select(options.select);
  client_internal::ToProto(target, request.mutable_target());
  client_internal::ToProto(options.rule_set(), request.mutable_rules());
  client_internal::ToProto(options.match_options(), request.mutable_options());
  // Casting on the server saves a pass here, but the cast applies to every
  // tensor of the stream: only ask for it when one dtype fits all targets.
  std::optional<DType> cast = options.transfer_dtype;
  if (!cast && !target.empty()) {
    cast = target[0].dtype;
    for (const TensorEntry& e : target) {
      if (e.dtype != *cast) cast.reset();
      if (!cast) break;
    }
  }
  if (cast) request.set_cast_dtype(std::string(DTypeName(*cast)));
  request.set_chunk_bytes(options.chunk_bytes);
  request.set_max_receive_bytes(ClientCore::options().max_receive_bytes);

  StagingRingShape ring;
  if (AnyCuda(targets)) {
    WEIGHTD_ASSIGN_OR_RETURN(
        ring, client_internal::ChooseStagingRing(
                  options.cuda_staging.slots, options.cuda_staging.slot_bytes, options.chunk_bytes,
                  ClientCore::options().max_receive_bytes));
  }

  torch::NoGradGuard no_grad;
  LoadSink sink(options, cast, std::move(targets), ring, report);
  TransportInfo transport;
  absl::Status status = client_internal::RunFetchAuto(impl()->stub.get(), ClientCore::options(),
                                                      request, &sink, &transport);
  report->transport = transport.transport;
  report->transport_note = transport.note;
  if (status.ok()) status = sink.Commit();
  status.Update(sink.Finish());
  report->seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!status.ok()) {
    return absl::Status(
        status.code(),
        absl::StrCat(status.message(),
                     DescribeWritten(*report, sink.expected_tensors(), options.staged)));
  }
  return absl::OkStatus();
}

}  // namespace weightd
