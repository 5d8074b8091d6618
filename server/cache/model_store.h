// The model store: which versions exist, which are loaded, and the cache
// tiers' budgets. No gRPC here.
//
// Host tier: a snapshot's tensors are views into an mmap of its file
// (zero-copy); the budget counts the tensor bytes of each loaded snapshot's
// state dict.
// GPU tier (server/cache/gpu_tier.h): a version whose model.pbtxt says
// cache_tier: "cuda:N" is loaded to the host tier, then its served state
// dict is uploaded to device N. When that cannot be (no device, no CUDA in
// this build, over the budget...) it is served from host memory and
// VersionStatus::cache_note says why. "pinned" is served from the mmap as
// "host" (no pinned host copy yet).
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
#include "server/cache/gpu_tier.h"
#include "server/cache/snapshot.h"
#include "server/gpu/device_backend.h"
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
  // The GPU tier's devices; null: CudaBackend() (the CUDA runtime, or, in a
  // build without CUDA, none). Tests pass a HostBackend.
  std::shared_ptr<DeviceBackend> gpu_backend;
  // GPU tier budget per device in bytes; 0: half of each device's memory.
  uint64_t gpu_cache_bytes = 0;
  // A TCP Fetch of a GPU-resident version reads the device copy through
  // pinned staging buffers (true), or the host mmap as for other versions.
  bool gpu_fetch_from_device = true;
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
  std::string cache_tier;  // "host" or "cuda:N" when kReady, else empty
  // When kReady and model.pbtxt asks for a tier it is not in: why (no
  // device, over the budget, evicted...).
  std::string cache_note;
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

  // The GPU tier (devices, budgets, usage); exists without devices too.
  const GpuTier& gpu_tier() const { return *gpu_; }
  // The device copy of `snapshot` (its default view) when its model.pbtxt
  // asks for cuda:N; uploads it again when it was evicted. Null when it is
  // not (and cannot now be) resident, or `snapshot` is no longer the
  // store's. Holding the result keeps the device memory (IPC leases, Fetch).
  std::shared_ptr<const GpuResidency> Residency(const std::shared_ptr<const Snapshot>& snapshot);
  // Residency() when TCP Fetch reads device copies (gpu_fetch_from_device),
  // else null.
  std::shared_ptr<const GpuResidency> ResidencyForFetch(
      const std::shared_ptr<const Snapshot>& snapshot);

  // Called (without locks held) after model states change; used by health.
  void SetListener(std::function<void()> listener);

 private:
  struct Slot;
  struct ModelSlot {
    ModelEntry entry;  // name, config, config_error (versions live in slots)
    std::map<int64_t, std::shared_ptr<Slot>, std::greater<int64_t>> versions;
  };

  explicit ModelStore(StoreOptions options);

  // What a load needs of the model's entry: copied, because the entry may
  // change while a load runs unlocked.
  struct LoadConfig {
    std::string name;
    std::string select;
    std::string cache_tier;
  };
  static LoadConfig LoadConfigOf(const ModelEntry& entry) {
    return {entry.name, entry.config.select(), entry.config.cache_tier()};
  }

  absl::StatusOr<std::shared_ptr<const Snapshot>> AcquireSlotLocked(
      const LoadConfig& config, const std::shared_ptr<Slot>& slot, absl::Time deadline,
      bool* changed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Uploads `snapshot` to the GPU tier `cache_tier` names, without the lock.
  // Empty when resident or not asked for; else why not (told to on_warning
  // unless it is `previous_note`), with *retry when a later try may succeed.
  std::string UploadToGpu(const std::string& cache_tier, const Snapshot& snapshot, uint64_t key,
                          const std::string& previous_note, bool* retry)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<const ModelSlot*> FindModelLocked(absl::string_view model) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  ModelStatus StatusLocked(const ModelSlot& model) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void EvictLocked(const Slot* keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Install(std::vector<ModelEntry> models) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyChanged();

  const StoreOptions options_;
  // Before models_: slots drop their residencies from it as they go.
  const std::unique_ptr<GpuTier> gpu_;
  mutable absl::Mutex mu_;
  absl::CondVar loaded_;  // signalled when any load finishes
  std::map<std::string, ModelSlot, std::less<>> models_ ABSL_GUARDED_BY(mu_);
  std::vector<SkippedEntry> skipped_ ABSL_GUARDED_BY(mu_);
  uint64_t tick_ ABSL_GUARDED_BY(mu_) = 0;  // LRU clock
  uint64_t gpu_keys_ ABSL_GUARDED_BY(mu_) = 0;  // one GPU tier key per load
  absl::Mutex listener_mu_;
  std::function<void()> listener_ ABSL_GUARDED_BY(listener_mu_);
};

absl::string_view VersionStateName(VersionState state);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_CACHE_MODEL_STORE_H_
