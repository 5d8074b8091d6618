// The model store: which versions exist, which are loaded, and the host
// byte budget. No gRPC here.
//
// Host tier: a snapshot's tensors are views into an mmap of its file
// (zero-copy); the budget counts the tensor bytes of each loaded snapshot's
// state dict.
// TODO(issue 4): GPU tier (cuda:N via LibTorch, --gpu_cache_bytes) and pinned
// host copies; ModelConfig.cache_tier other than "host" is accepted and served
// from the host tier until then.
#ifndef WEIGHTD_SERVER_CACHE_MODEL_STORE_H_
#define WEIGHTD_SERVER_CACHE_MODEL_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/cache/snapshot.h"
#include "server/metrics/registry.h"
#include "server/repository/repository.h"

namespace weightd {

struct StoreOptions {
  std::string repository;
  // Per-model configs outside the repository, <dir>/<model>.pbtxt, each
  // replacing <repo>/<model>/model.pbtxt (server/repository/repository.h);
  // re-read by Rescan. Empty: none.
  std::string model_config_dir;
  // Serve through symlinks that leave the repository (RepositoryOptions).
  bool follow_external_symlinks = false;
  // Host tier budget in bytes; 0: unlimited.
  uint64_t host_cache_bytes = 0;
  // Load the newest version of every model at Open (else only models whose
  // model.pbtxt says `preload: true`).
  bool preload = false;
  // Told each warning of a repository scan (Open and Rescan): skipped
  // entries (see ScanRepository), config-dir files for unknown models,
  // versions that cannot be served (bad model.pbtxt, no checkpoint). Null:
  // dropped. Called without the store's lock held.
  std::function<void(absl::string_view)> on_warning;
  // Told each failed load or reload ("model \"m\" version 2: load failed:
  // FILE: REASON"), whoever asked for it (preload, a request, LoadModel).
  // Null: dropped. Called without the store's lock held, from the loading
  // thread.
  std::function<void(absl::string_view)> on_load_failure;
  // Where cache hits/misses and load times are recorded; null: nowhere.
  // Must outlive the store.
  MetricsRegistry* metrics = nullptr;
};

enum class VersionState { kUnloaded, kLoading, kReady, kFailed };

struct VersionStatus {
  int64_t version = 0;
  VersionState state = VersionState::kUnloaded;
  std::string reason;  // set when kFailed: the file and the cause
  // Known once loaded (kept after an unload or eviction).
  std::string format;
  std::string path;  // relative to the repository
  uint64_t tensor_count = 0;
  uint64_t bytes = 0;
  std::string cache_tier;  // "host" when kReady, else empty
  std::string select;      // select path of the served state dict
};

struct ModelStatus {
  std::string name;
  std::vector<VersionStatus> versions;  // newest first
};

// Thread-safe. Snapshots handed out stay valid while held, whatever happens
// to the store (unload, eviction, rescan, destruction).
class ModelStore {
 public:
  // Scans the repository and preloads what the options and configs ask for
  // (a failed preload is recorded, not returned). NotFound when the
  // repository is not a directory.
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(StoreOptions options);

  ModelStore(const ModelStore&) = delete;
  ModelStore& operator=(const ModelStore&) = delete;

  std::vector<ModelStatus> List() const;
  // What the last scan skipped, and why (ScanRepository), in scan order.
  std::vector<SkippedEntry> Skipped() const;
  absl::StatusOr<ModelStatus> Status(absl::string_view model) const;
  absl::StatusOr<v1::ModelConfig> Config(absl::string_view model) const;

  // The snapshot of `model` at `version`, loading it on first use; concurrent
  // callers share one load. Version 0: the newest version that loads (a
  // failed newer version leaves the older one serving). NotFound: unknown
  // model or version; the load's error (DataLoss, FailedPrecondition...) for
  // a version that failed; Unavailable when another caller's load is still
  // running at `deadline`.
  absl::StatusOr<std::shared_ptr<const Snapshot>> Acquire(
      absl::string_view model, int64_t version, absl::Time deadline = absl::InfiniteFuture());

  // Loads `version` (0: the newest), retrying one that failed before.
  absl::StatusOr<ModelStatus> Load(absl::string_view model, int64_t version);
  // Drops the store's reference to `version` (0: all versions). Streams that
  // hold the snapshot keep it. NotFound for an unknown model or version.
  absl::Status Unload(absl::string_view model, int64_t version);
  // Re-reads the repository: new models and versions appear, removed ones go,
  // a replaced file or changed model.pbtxt makes its versions load afresh.
  // Loaded, unchanged versions stay loaded.
  absl::StatusOr<std::vector<ModelStatus>> Rescan();

  // Sum of host_bytes() over loaded snapshots.
  uint64_t host_bytes() const;

  // Called (without locks held) after model states change; used by health.
  void SetListener(std::function<void()> listener);

 private:
  struct Slot;
  struct ModelSlot {
    ModelEntry entry;  // name, config, config_error (versions live in slots)
    std::map<int64_t, std::shared_ptr<Slot>, std::greater<int64_t>> versions;
  };

  explicit ModelStore(StoreOptions options) : options_(std::move(options)) {}

  absl::StatusOr<std::shared_ptr<const Snapshot>> AcquireSlotLocked(
      const std::string& name, const std::string& select, const std::shared_ptr<Slot>& slot,
      absl::Time deadline, bool* changed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<const ModelSlot*> FindModelLocked(absl::string_view model) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  ModelStatus StatusLocked(const ModelSlot& model) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void EvictLocked(const Slot* keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Install(std::vector<ModelEntry> models) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyChanged();

  const StoreOptions options_;
  mutable absl::Mutex mu_;
  absl::CondVar loaded_;  // signalled when any load finishes
  std::map<std::string, ModelSlot, std::less<>> models_ ABSL_GUARDED_BY(mu_);
  std::vector<SkippedEntry> skipped_ ABSL_GUARDED_BY(mu_);
  uint64_t tick_ ABSL_GUARDED_BY(mu_) = 0;  // LRU clock
  absl::Mutex listener_mu_;
  std::function<void()> listener_ ABSL_GUARDED_BY(listener_mu_);
};

absl::string_view VersionStateName(VersionState state);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_CACHE_MODEL_STORE_H_
