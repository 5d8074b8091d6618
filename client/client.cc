// weightd::Client: LibTorch on top of ClientCore (client_core.cc): Match
// against a module and Fetch onto a device (CUDA through the staging ring
// of client/cuda_staging.h). Load is in load.cc.
#include "client/client.h"

#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/cuda_staging.h"
#include "client/fetch_stream.h"
#include "client/staging_ring.h"
#include "core/util/status_macros.h"

namespace weightd {

Client::Client(ClientOptions options) : ClientCore(std::move(options)) {}

Client::~Client() = default;

absl::StatusOr<MatchReport> Client::Match(const torch::nn::Module& module, const std::string& model,
                                          const MatchSpec& spec, int64_t* version) {
  WEIGHTD_ASSIGN_OR_RETURN(std::vector<TensorEntry> target, ModuleEntries(module));
  return Match(model, target, spec, version);
}

namespace {

using client_internal::CudaStager;

// Fetch's sink: each tensor into a new tensor. On a CUDA device with the
// staging ring, the tensor is allocated there and filled through the ring;
// elsewhere it fills a CPU tensor, moved to the device when complete.
class FetchIntoMap : public client_internal::TensorSink {
 public:
  FetchIntoMap(torch::Device device, CudaStager* stager, TensorMap* out)
      : device_(device), stager_(stager), out_(out) {}

  absl::Status Begin(const std::string& name, DType dtype, std::vector<int64_t> shape,
                     uint64_t /*nbytes*/) override {
    name_ = name;
    absl::StatusOr<c10::ScalarType> type = ToScalarType(dtype, name);
    if (!type.ok()) return type.status();
    return Torch([&] {
      const torch::TensorOptions options = torch::TensorOptions().dtype(*type);
      if (stager_ != nullptr) {
        // Allocated on the caller's current stream, which owns it afterwards;
        // the stager's stream waited for that stream's earlier work.
        current_ =
            torch::empty(shape, options.device(torch::Device(torch::kCUDA, stager_->device())));
        stager_->BeginTensor(current_.data_ptr(), current_.nbytes());
      } else {
        current_ = torch::empty(shape, options);
      }
    });
  }

  absl::Status Write(absl::string_view data, uint64_t offset) override {
    if (stager_ != nullptr) return Torch([&] { stager_->Write(data); });
    std::memcpy(static_cast<char*>(current_.data_ptr()) + offset, data.data(), data.size());
    return absl::OkStatus();
  }

  absl::Status End() override {
    return Torch([&] {
      torch::Tensor t = current_;
      if (stager_ != nullptr) {
        stager_->EndTensor();
      } else if (!device_.is_cpu()) {
        t = t.to(device_);
      }
      out_->insert(name_, std::move(t));
      current_ = torch::Tensor();
    });
  }

 private:
  // The one boundary where LibTorch may throw.
  template <typename Fn>
  absl::Status Torch(Fn fn) {
    try {
      fn();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return absl::InternalError(
          absl::StrCat("LibTorch, at tensor ", name_, " (onto ", device_.str(), "): ", e.what()));
    }
  }

  const torch::Device device_;
  CudaStager* stager_;
  TensorMap* out_;
  std::string name_;
  torch::Tensor current_;
};

}  // namespace

absl::StatusOr<TensorMap> Client::Fetch(const std::string& model, const FetchOptions& options) {
  std::unique_ptr<CudaStager> stager;
  if (options.device.is_cuda()) {
    WEIGHTD_ASSIGN_OR_RETURN(c10::DeviceIndex index,
                             CudaStager::Resolve(options.device, "Fetch onto"));
    if (CudaStager::Built()) {
      WEIGHTD_ASSIGN_OR_RETURN(client_internal::StagingRingShape ring,
                               client_internal::ChooseStagingRing(
                                   options.cuda_staging.slots, options.cuda_staging.slot_bytes,
                                   options.chunk_bytes, ClientCore::options().max_receive_bytes));
      WEIGHTD_ASSIGN_OR_RETURN(stager, CudaStager::Create(index, ring));
    }
  }
  TensorMap out;
  FetchIntoMap sink(options.device, stager.get(), &out);
  absl::Status status = FetchInto(model, options, &sink);
  if (stager != nullptr) status.Update(stager->Finish());
  if (!status.ok()) return status;
  return out;
}

}  // namespace weightd
