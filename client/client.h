// weightd::Client: the C++ client of a weightd server (DESIGN.md section 6),
// with LibTorch. ClientCore (client/client_core.h) is the part without it:
// ListModels, GetManifest, Match against explicit entries, FetchHost.
//
//   weightd::Client client(weightd::ClientOptions{.target = "localhost:50051"});
//   weightd::LoadOptions opt;
//   opt.rules = {weightd::StripPrefix("module.")};
//   opt.on_shape_mismatch = weightd::ShapePolicy::kSkip;
//   absl::StatusOr<weightd::LoadReport> r = client.Load(*module, "resnet50", opt);
//
// Thread-safe: one Client (one gRPC channel) may serve calls from many threads
// at once. Loading into the same module from two threads at once is a data
// race, as with load_state_dict.
//
// Errors are absl::Status with the server's code (NotFound for an unknown
// model, FailedPrecondition for a load the match report rejects, ...).
// UNAVAILABLE (server not up yet, connection refused) is retried with
// exponential backoff before any tensor byte has arrived.
#ifndef WEIGHTD_CLIENT_CLIENT_H_
#define WEIGHTD_CLIENT_CLIENT_H_

// The narrow LibTorch headers: <torch/torch.h> costs every includer ~1 min.
#include <torch/nn/module.h>
#include <torch/ordered_dict.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client_core.h"
#include "core/checkpoint/dtype.h"
#include "core/match/match.h"

namespace weightd {

// How bytes bound for a CUDA device travel (Load into CUDA parameters, Fetch
// onto cuda:N): each chunk is memcpy'd into the next of `slots` pinned host
// buffers of `slot_bytes`, copied to the device asynchronously on a CUDA
// stream of the call's own, and the buffer is reused once its copy is done.
// Pinned memory: slots x slot_bytes per device (at most 1 GiB), allocated
// once per call from LibTorch's caching host allocator.
struct CudaStaging {
  uint32_t slots = 4;       // 1..64 (0: 4)
  uint32_t slot_bytes = 0;  // >= 4 KiB; 0: one chunk (chunk_bytes, else the server's 1 MiB)
};

struct LoadOptions : MatchSpec {
  // Dtype the server sends (e.g. bfloat16 to halve the bytes); each tensor
  // is then converted into its parameter's dtype as copy_ does. Unset: the
  // server casts to the module's dtype when all matched parameters share one,
  // else tensors travel as stored and are converted here.
  std::optional<DType> transfer_dtype;
  // Stage every tensor and copy into the module only once all have arrived
  // and verified: on failure the module is untouched. Costs one extra copy
  // of the matched tensors in memory. Without it, tensors are written in
  // place as they arrive (peak extra memory: a few chunks).
  bool staged = false;
  uint32_t chunk_bytes = 0;  // 0: the server's default (1 MiB)
  // Threads that copy bytes into CPU parameters, the calling thread
  // included; 0: at::get_num_threads(), as torch's copy_. Only copies of at
  // least 1 MiB a thread are split: in practice the same-node path, where
  // whole tensors arrive at once from the mapping; a stream's chunks are
  // copied as they come off the socket, on the loading thread.
  int copy_threads = 0;
  // Called on the loading thread after each chunk with (bytes received,
  // bytes the load will receive in all).
  std::function<void(uint64_t, uint64_t)> progress;
  // CUDA destinations only; checked when the module has CUDA tensors.
  CudaStaging cuda_staging;
};

// What a load did. After a failure, `written` says which parameters and
// buffers already hold new values (always empty for a staged load).
struct LoadReport {
  int64_t version = 0;
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
  std::vector<ShapeMismatch> mismatched;
  std::vector<Rule> inferred_rules;
  std::vector<std::string> errors;   // the match report's, as PyTorch words them
  std::vector<std::string> written;  // target names, in arrival order
  uint64_t tensors = 0;              // tensors written into the module
  uint64_t bytes = 0;                // tensor bytes received
  double seconds = 0;
  // "local" (the same-node path: descriptors, one memcpy from the mapping
  // into each parameter) or "stream" (the Fetch stream), and for "stream"
  // why (ClientOptions::local).
  std::string transport;
  std::string transport_note;
  // CUDA destinations: host-to-device copies queued, and how often the
  // receiving thread waited for a staging buffer whose copy still ran.
  uint64_t staging_copies = 0;
  uint64_t staging_waits = 0;
};

// FetchSpec, plus where the tensors go.
struct FetchOptions : FetchSpec {
  // Like torch.load's map_location: kCPU, "cuda" (the current device) or
  // "cuda:N". Tensors for CUDA are allocated there and filled through the
  // staging ring; the call returns once they hold their bytes.
  torch::Device device = torch::kCPU;
  CudaStaging cuda_staging;
};

using TensorMap = torch::OrderedDict<std::string, torch::Tensor>;

class Client : public ClientCore {
 public:
  // Creates the channel; connects lazily on the first call.
  explicit Client(ClientOptions options);
  ~Client() override;

  // Match against explicit entries (ClientCore), or against a module.
  using ClientCore::Match;
  absl::StatusOr<MatchReport> Match(const torch::nn::Module& module, const std::string& model,
                                    const MatchSpec& spec, int64_t* version = nullptr);

  // The selected tensors, in checkpoint order, on `options.device`. Each is
  // a tensor of its own: on the local path the bytes are copied out of the
  // read-only mapping (which is gone when Fetch returns), so the tensors are
  // writable and outlive nothing. options.transport says which path was taken.
  absl::StatusOr<TensorMap> Fetch(const std::string& model, const FetchOptions& options = {});

  // Loads `model` into the module's parameters and buffers (see LoadOptions).
  // FailedPrecondition when the match report says load_state_dict would fail
  // (report fields filled, nothing written).
  absl::StatusOr<LoadReport> Load(torch::nn::Module& module, const std::string& model,
                                  const LoadOptions& options = {});
  // Same, and `*report` is filled on failure too (`written`, `errors`).
  absl::Status Load(torch::nn::Module& module, const std::string& model, const LoadOptions& options,
                    LoadReport* report);
};

// The module's parameters then buffers, as the target of a match.
// InvalidArgument for a dtype weightd does not know (quantized types).
absl::StatusOr<std::vector<TensorEntry>> ModuleEntries(const torch::nn::Module& module);

// dtype conversions between weightd and LibTorch. The torch 2.x dtypes
// (float8_*, uint16/32/64) map where this LibTorch has them; built against an
// older one (1.13) they are FailedPrecondition "dtype float8_e4m3fn needs
// LibTorch >= 2.1 ..."; the two-argument form prefixes "tensor 'NAME': ".
absl::StatusOr<c10::ScalarType> ToScalarType(DType dtype);
absl::StatusOr<c10::ScalarType> ToScalarType(DType dtype, absl::string_view tensor);
absl::StatusOr<DType> FromScalarType(c10::ScalarType type);

}  // namespace weightd

#endif  // WEIGHTD_CLIENT_CLIENT_H_
