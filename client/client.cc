// weightd::Client: LibTorch on top of ClientCore (client_core.cc): Match
// against a module and Fetch onto a device. Load is in load.cc.
#include "client/client.h"

#include <torch/cuda.h>

#include <cstring>
#include <utility>

#include "client/fetch_stream.h"
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

// Fetch's sink: each tensor into a new CPU tensor (pinned when bound for a
// GPU), moved to the device when complete.
class FetchIntoMap : public client_internal::TensorSink {
 public:
  FetchIntoMap(const FetchOptions& options, TensorMap* out) : options_(options), out_(out) {}

  absl::Status Begin(const std::string& name, DType dtype, std::vector<int64_t> shape,
                     uint64_t /*nbytes*/) override {
    name_ = name;
    const bool pin = !options_.device.is_cpu() && torch::cuda::is_available();
    absl::StatusOr<c10::ScalarType> type = ToScalarType(dtype, name);
    if (!type.ok()) return type.status();
    current_ = torch::empty(shape, torch::TensorOptions().dtype(*type).pinned_memory(pin));
    return absl::OkStatus();
  }

  absl::Status Write(absl::string_view data, uint64_t offset) override {
    std::memcpy(static_cast<char*>(current_.data_ptr()) + offset, data.data(), data.size());
    return absl::OkStatus();
  }

  absl::Status End() override {
    torch::Tensor t = current_;
    if (!options_.device.is_cpu()) t = t.to(options_.device, /*non_blocking=*/true);
    out_->insert(name_, std::move(t));
    current_ = torch::Tensor();
    return absl::OkStatus();
  }

 private:
  const FetchOptions& options_;
  TensorMap* out_;
  std::string name_;
  torch::Tensor current_;
};

}  // namespace

absl::StatusOr<TensorMap> Client::Fetch(const std::string& model, const FetchOptions& options) {
  TensorMap out;
  FetchIntoMap sink(options, &out);
  absl::Status status = FetchInto(model, options, &sink);
  if (!options.device.is_cpu() && options.device.is_cuda() && torch::cuda::is_available()) {
    torch::cuda::synchronize();
  }
  if (!status.ok()) return status;
  return out;
}

}  // namespace weightd
