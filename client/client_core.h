// weightd::ClientCore: the weightd client without LibTorch (DESIGN.md
// section 6): channel, ListModels, GetManifest, Match against an explicit
// target, and Fetch into host memory. weightd::Client (client/client.h) adds
// LibTorch on top: Match against a module, Fetch onto a device, Load.
//
//   weightd::ClientCore client(weightd::ClientOptions{.target = "localhost:50051"});
//   absl::StatusOr<weightd::StateDict> sd = client.FetchHost("resnet50");
//
// Thread-safe: one ClientCore (one gRPC channel) may serve calls from many
// threads at once.
//
// Errors are absl::Status with the server's code (NotFound for an unknown
// model, ...). UNAVAILABLE (server not up yet, connection refused) is retried
// with exponential backoff before any tensor byte has arrived.
#ifndef WEIGHTD_CLIENT_CLIENT_CORE_H_
#define WEIGHTD_CLIENT_CLIENT_CORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/checkpoint/checkpoint.h"
#include "core/checkpoint/dtype.h"
#include "core/checkpoint/tensor.h"
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
  // How long one connection attempt (TCP connect, then the server's HTTP/2
  // SETTINGS) may take before gRPC gives it up. Calls wait for an attempt
  // in progress, so this bounds the first call's wait for a server that
  // accepts but is slow to answer (a herd of clients starting at once on a
  // busy node); a refused connection fails at once whatever it says.
  absl::Duration connect_timeout = absl::Seconds(20);
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

  // The same-node path (DESIGN.md section 9), for "unix:PATH" targets only:
  // Fetch, FetchHost, FetchTo and Load first ask LocalFetch, receive
  // read-only descriptors of the server's own page-cache pages (the
  // checkpoint file; a sealed memfd for cast or copied tensors) over the
  // side channel PATH.fds, and copy from a read-only mapping of them: no
  // tensor byte crosses a socket. A server without it (older, or reached
  // other than through its Unix socket), a side channel that fails, or a
  // descriptor that does not map make the call take the stream instead,
  // silently; TransportInfo says which path was taken and why. False: always
  // the stream.
  bool local = true;
  // On the local path the bytes are not hashed by default: they are the
  // server's own file pages (or its sealed memfd), not copied through a
  // socket, and read-only here. True: the server sends checksums (hashing
  // what it has not hashed yet) and the client checks every tensor before
  // it is written; xxh64 runs at 3-5 GB/s on the project's VM, 0.2-0.35 s
  // per GiB on each side the first time (bench/RESULTS.md, same-node section).
  // The stream path always checks.
  bool verify_local_checksums = false;
};

// Which path a fetch took (FetchSpec::transport, LoadReport::transport).
struct TransportInfo {
  // "local": descriptors over the side channel; "stream": the Fetch stream.
  std::string transport;
  // Why the stream was taken (for "stream"); empty otherwise.
  std::string note;
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
  // Why a version model.pbtxt puts in another tier is not there (e.g.
  // "cuda:0" served from "host": no device); empty otherwise.
  std::string cache_note;
};

struct ModelInfo {
  std::string name;
  std::vector<ModelVersionInfo> versions;  // newest first
};

// A repository entry the server skipped (ListModelsResponse.skipped).
struct SkippedEntryInfo {
  std::string path;  // relative to the repository
  std::string reason;
};

struct ManifestTensor {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  // xxHash64 of the row-major bytes, 16 hex digits; empty when not asked
  // for or not computed yet (ManifestChecksums).
  std::string checksum;
};

// Which checksums GetManifest carries. Each one reads every byte of its
// tensor on the server the first time (seconds for a large model).
enum class ManifestChecksums {
  kAll,    // computed where missing: the manifest is complete
  kKnown,  // only those the server already computed; others empty
  kNone,   // none: names, dtypes and shapes only, at once
};

struct Manifest {
  std::string model;
  int64_t version = 0;
  std::string format;
  std::string select;
  std::vector<ManifestTensor> tensors;
  // Non-tensor leaves (epoch, loss...) as one JSON object, in checkpoint
  // order, floats written as floats (older servers: key order and number
  // types of a google.protobuf.Struct).
  std::string metadata_json;
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
  // load_state_dict(strict=True), PyTorch's default: missing or unexpected
  // keys (after ignore_*) fail the load. Keys skipped under
  // ShapePolicy::kSkip keep their initial values and fail nothing.
  bool strict = true;
  // A match that pairs zero tensors fails unless this is set.
  bool allow_empty = false;

  RuleSet rule_set() const;
  void set_rule_set(const RuleSet& rule_set);
  MatchOptions match_options() const;
};

// What Fetch asks for (client.h's FetchOptions adds the device).
struct FetchSpec {
  int64_t version = 0;
  std::string select;
  // Source names to fetch; empty: all (after include/exclude in `rules`).
  std::vector<std::string> keys;
  // include/exclude select source names, the rewriting rules rename them
  // (applied here; ignore_* and auto_prefix do not apply without a target).
  RuleSet rules;
  std::optional<DType> dtype;  // cast on the server; unset: as stored
  uint32_t chunk_bytes = 0;
  // Called after each chunk with (bytes so far, total bytes of the fetch).
  std::function<void(uint64_t, uint64_t)> progress;
  // When set, receives which path the fetch took (ClientOptions::local).
  // Not owned; must outlive the call.
  TransportInfo* transport = nullptr;
};

namespace client_internal {
class TensorSink;
}  // namespace client_internal

// Receives the tensors of ClientCore::FetchTo as they arrive, on the calling
// thread, so that they can go somewhere (a file) without being gathered.
class TensorReceiver {
 public:
  virtual ~TensorReceiver() = default;
  // Once, before any tensor byte: every tensor the stream will carry, in
  // stream order, named by the rules, with the dtype as sent. Empty when the
  // include/exclude patterns leave nothing (then nothing else is called).
  virtual absl::Status Plan(std::vector<TensorDescriptor> tensors) = 0;
  // Tensor `index` of the plan begins (indexes in order).
  virtual absl::Status Begin(size_t index) = 0;
  // The current tensor's next bytes (row-major, consecutive).
  virtual absl::Status Write(absl::string_view data) = 0;
  // All of the current tensor's bytes arrived and their checksum matched.
  virtual absl::Status End() = 0;
};

class ClientCore {
 public:
  // Creates the channel; connects lazily on the first call.
  explicit ClientCore(ClientOptions options);
  virtual ~ClientCore();
  ClientCore(const ClientCore&) = delete;
  ClientCore& operator=(const ClientCore&) = delete;

  const ClientOptions& options() const { return options_; }

  // `*skipped`, when given, receives the repository entries the server
  // skipped and why.
  absl::StatusOr<std::vector<ModelInfo>> ListModels(
      std::vector<SkippedEntryInfo>* skipped = nullptr);
  absl::StatusOr<Manifest> GetManifest(const std::string& model, int64_t version = 0,
                                       const std::string& select = "",
                                       ManifestChecksums checksums = ManifestChecksums::kAll);

  // Dry run: the report a load of `target` would get; no tensor bytes move.
  // `*version`, when given, receives the version matched against.
  absl::StatusOr<MatchReport> Match(const std::string& model, absl::Span<const TensorEntry> target,
                                    const MatchSpec& spec, int64_t* version = nullptr);

  // The selected tensors, in checkpoint order, renamed by the rules, each
  // contiguous in a buffer of its own (checksums verified on the stream path;
  // see ClientOptions::verify_local_checksums). The result owns its memory
  // and can go straight to WriteCheckpoint: on the local path too, each
  // tensor is copied out of the mapping (once), which is unmapped before the
  // call returns, so nothing returned aliases the server's pages.
  absl::StatusOr<StateDict> FetchHost(const std::string& model, const FetchSpec& spec = {});

  // The same fetch, handed to `receiver` as it arrives: no tensor is held
  // in memory here. A stream whose tensors differ from its report is
  // DataLoss; a receiver's error ends the stream with that error.
  absl::Status FetchTo(const std::string& model, const FetchSpec& spec, TensorReceiver* receiver);

 protected:
  struct Impl;  // client/client_impl.h
  Impl* impl() { return impl_.get(); }
  // Streams Fetch(model, spec) into `sink` (names already renamed).
  absl::Status FetchInto(const std::string& model, const FetchSpec& spec,
                         client_internal::TensorSink* sink);

 private:
  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace weightd

#endif  // WEIGHTD_CLIENT_CLIENT_CORE_H_
