// weightd::Client: the C++ client of a weightd server (DESIGN.md section 6).
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
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/checkpoint/dtype.h"
#include "core/match/match.h"
#include "core/match/rules.h"

namespace weightd {

struct ClientOptions {
  // gRPC target: "host:port", "dns:///host:port" (every address the name
  // resolves to, e.g. a Kubernetes headless Service), "unix:/path".
  std::string target = "localhost:50051";
  // gRPC load-balancing policy over the resolved addresses.
  std::string load_balancing_policy = "round_robin";
  // Largest message the client accepts; sent to the server so that Fetch
  // chunks never exceed it (they are 1 MiB by default).
  uint32_t max_receive_bytes = 16 << 20;
  // Deadline of each unary call and of each whole Fetch/Load stream.
  absl::Duration deadline = absl::Minutes(10);
  // UNAVAILABLE is retried up to `max_attempts` calls in all, waiting
  // initial_backoff, then x backoff_multiplier each time, at most max_backoff.
  int max_attempts = 5;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  double backoff_multiplier = 2.0;
  // TLS: PEM file of the CA that signed the server certificate; empty:
  // plaintext. An unreadable file leaves the system roots (calls then fail
  // with UNAVAILABLE if they do not cover the server).
  std::string tls_ca;
  // mTLS: PEM client certificate and key, with tls_ca.
  std::string tls_cert;
  std::string tls_key;
  // Bearer token sent as "authorization: Bearer TOKEN" on every call (also
  // over plaintext, for servers behind a TLS-terminating proxy); empty: the
  // WEIGHTD_TOKEN environment variable, if set.
  std::string token;
};

// One version of a model, as ListModels describes it.
struct ModelVersionInfo {
  int64_t version = 0;
  std::string state;   // "unloaded", "loading", "ready", "failed"
  std::string reason;  // why the last load failed
  std::string format;  // torch_zip, torch_legacy, safetensors, ...
  std::string path;
  uint64_t tensor_count = 0;
  uint64_t bytes = 0;
  std::string cache_tier;  // "host", "cuda:0"; empty when not cached
  std::string select;
};

struct ModelInfo {
  std::string name;
  std::vector<ModelVersionInfo> versions;  // newest first
};

struct ManifestTensor {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  std::string checksum;  // xxHash64 of the row-major bytes, 16 hex digits
};

struct Manifest {
  std::string model;
  int64_t version = 0;
  std::string format;
  std::string select;
  std::vector<ManifestTensor> tensors;
  std::string metadata_json;  // non-tensor leaves (epoch, loss...) as JSON
};

// Which state dict of which version, and how its names map onto a target.
// The fields mirror RuleSet (core/match/rules.h) so that
// `opt.rules = {StripPrefix("module.")}` reads as in DESIGN.md.
struct MatchSpec {
  int64_t version = 0;  // 0: the newest ready version
  std::string select;   // empty: the model's configured or automatic choice
  std::vector<Rule> rules;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::vector<std::string> ignore_missing;
  std::vector<std::string> ignore_unexpected;
  bool auto_prefix = false;
  ShapePolicy on_shape_mismatch = ShapePolicy::kError;
  bool strict = false;

  RuleSet rule_set() const;
  void set_rule_set(const RuleSet& rule_set);
  MatchOptions match_options() const;
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
  // Called on the loading thread after each chunk with (bytes received,
  // bytes the load will receive in all).
  std::function<void(uint64_t, uint64_t)> progress;
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
};

struct FetchOptions {
  int64_t version = 0;
  std::string select;
  // Source names to fetch; empty: all (after include/exclude in `rules`).
  std::vector<std::string> keys;
  // include/exclude select source names, the rewriting rules rename them
  // (applied here; ignore_* and auto_prefix do not apply without a target).
  RuleSet rules;
  std::optional<DType> dtype;          // cast on the server; unset: as stored
  torch::Device device = torch::kCPU;  // like torch.load's map_location
  uint32_t chunk_bytes = 0;
  // Called after each chunk with (bytes so far, total bytes of the fetch).
  std::function<void(uint64_t, uint64_t)> progress;
};

using TensorMap = torch::OrderedDict<std::string, torch::Tensor>;

class Client {
 public:
  // Creates the channel; connects lazily on the first call.
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ClientOptions& options() const { return options_; }

  absl::StatusOr<std::vector<ModelInfo>> ListModels();
  absl::StatusOr<Manifest> GetManifest(const std::string& model, int64_t version = 0,
                                       const std::string& select = "");

  // Dry run: the report a load of `target` would get; no tensor bytes move.
  // `*version`, when given, receives the version matched against.
  absl::StatusOr<MatchReport> Match(const std::string& model, absl::Span<const TensorEntry> target,
                                    const MatchSpec& spec, int64_t* version = nullptr);
  absl::StatusOr<MatchReport> Match(const torch::nn::Module& module, const std::string& model,
                                    const MatchSpec& spec, int64_t* version = nullptr);

  // The selected tensors, in checkpoint order, on `options.device`.
  absl::StatusOr<TensorMap> Fetch(const std::string& model, const FetchOptions& options = {});

  // Loads `model` into the module's parameters and buffers (see LoadOptions).
  // FailedPrecondition when the match report says load_state_dict would fail
  // (report fields filled, nothing written).
  absl::StatusOr<LoadReport> Load(torch::nn::Module& module, const std::string& model,
                                  const LoadOptions& options = {});
  // Same, and `*report` is filled on failure too (`written`, `errors`).
  absl::Status Load(torch::nn::Module& module, const std::string& model, const LoadOptions& options,
                    LoadReport* report);

 private:
  struct Impl;
  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

// The module's parameters then buffers, as the target of a match.
// InvalidArgument for a dtype weightd does not know (quantized types).
absl::StatusOr<std::vector<TensorEntry>> ModuleEntries(const torch::nn::Module& module);

// dtype conversions between weightd and LibTorch.
c10::ScalarType ToScalarType(DType dtype);
absl::StatusOr<DType> FromScalarType(c10::ScalarType type);

}  // namespace weightd

#endif  // WEIGHTD_CLIENT_CLIENT_H_
