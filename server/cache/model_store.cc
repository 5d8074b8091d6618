#include "server/cache/model_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/metrics/weightd_metrics.h"

namespace weightd {
namespace {

// The GPU tier records under its own {tier="cuda:N"} (gpu_tier.cc).
const Labels kHostTier = {{"tier", "host"}};

// The repository's models; a successful scan's warnings go to on_warning,
// with one per version that cannot be served as it is (bad model.pbtxt,
// no or two checkpoints), so that none fails silently.
absl::StatusOr<std::vector<ModelEntry>> Scan(const StoreOptions& options,
                                             std::vector<SkippedEntry>* skipped) {
  std::vector<std::string> warnings;
  RepositoryOptions repository;
  repository.root = options.repository;
  repository.config_dir = options.model_config_dir;
  repository.follow_external_symlinks = options.follow_external_symlinks;
  absl::StatusOr<std::vector<ModelEntry>> scanned =
      ScanRepository(repository, &warnings, skipped);
  if (scanned.ok() && options.on_warning) {
    for (const std::string& warning : warnings) options.on_warning(warning);
    for (const ModelEntry& model : *scanned) {
      for (const VersionEntry& version : model.versions) {
        const absl::Status& error = model.config_error.ok() ? version.error : model.config_error;
        if (error.ok()) continue;
        options.on_warning(absl::StrCat("model \"", model.name, "\" version ", version.version,
                                        " cannot be served: ", error.message()));
      }
    }
  }
  return scanned;
}

std::string NoVersions(absl::string_view model, const std::string& reason) {
  return absl::StrCat("model \"", model, "\" has no versions", reason.empty() ? "" : ": ",
                      reason);
}

}  // namespace

// One version's state. Shared so a load that finishes after a rescan dropped
// the version writes into a detached slot harmlessly.
struct ModelStore::Slot {
  explicit Slot(GpuTier* tier) : gpu(tier) {}
  ~Slot() {
    if (gpu_key != 0) gpu->Drop(gpu_key);
  }

  GpuTier* const gpu;
  VersionEntry entry;
  VersionState state = VersionState::kUnloaded;
  absl::Status failure;  // when kFailed
  std::shared_ptr<const Snapshot> snapshot;  // when kReady
  uint64_t last_use = 0;
  // What the last successful load found, kept after unload.
  std::string format;
  uint64_t tensor_count = 0;
  uint64_t bytes = 0;
  std::string select;
  // GPU tier, set by each load: the residency's key in the tier (0: none),
  // the device model.pbtxt asked for (-1: none), why it is not resident
  // (empty: it was uploaded), whether Residency() may upload it again.
  uint64_t gpu_key = 0;
  int gpu_device = -1;
  std::string gpu_tier_config;
  std::string gpu_note;
  bool gpu_retry = false;
  bool uploading = false;
};

ModelStore::ModelStore(StoreOptions options)
    : options_(std::move(options)),
      gpu_(std::make_unique<GpuTier>(
          options_.gpu_backend != nullptr ? options_.gpu_backend : CudaBackend(),
          GpuTierOptions{options_.gpu_cache_bytes, 4 << 20, 64, options_.metrics})) {}

absl::string_view VersionStateName(VersionState state) {
  switch (state) {
    case VersionState::kUnloaded:
      return "unloaded";
    case VersionState::kLoading:
      return "loading";
    case VersionState::kReady:
      return "ready";
    case VersionState::kFailed:
      return "failed";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::Open(StoreOptions options) {
  std::vector<SkippedEntry> skipped;
  absl::StatusOr<std::vector<ModelEntry>> scanned = Scan(options, &skipped);
  if (!scanned.ok()) return scanned.status();
  std::unique_ptr<ModelStore> store(new ModelStore(std::move(options)));
  std::vector<std::string> preload;
  {
    absl::MutexLock lock(&store->mu_);
    store->Install(*std::move(scanned));
    store->skipped_ = std::move(skipped);
    for (const auto& [name, model] : store->models_) {
      if (store->options_.preload || model.entry.config.preload()) preload.push_back(name);
    }
  }
  // Preload failures are recorded in the slots and show in List().
  for (const std::string& name : preload) store->Acquire(name, 0).status().IgnoreError();
  return store;
}

void ModelStore::Install(std::vector<ModelEntry> models) {
  std::map<std::string, ModelSlot, std::less<>> next;
  for (ModelEntry& entry : models) {
    ModelSlot& model = next[entry.name];
    auto old = models_.find(entry.name);
    const bool same_config =
        old != models_.end() &&
        old->second.entry.config.SerializeAsString() == entry.config.SerializeAsString() &&
        old->second.entry.config_error == entry.config_error;
    for (VersionEntry& version : entry.versions) {
      if (same_config) {
        auto it = old->second.versions.find(version.version);
        if (it != old->second.versions.end()) {
          const VersionEntry& was = it->second->entry;
          if (was.path == version.path && was.file_size == version.file_size &&
              was.mtime_ns == version.mtime_ns && was.error == version.error) {
            model.versions.emplace(version.version, it->second);
            continue;
          }
        }
      }
      auto slot = std::make_shared<Slot>(gpu_.get());
      slot->entry = std::move(version);
      absl::Status error = entry.config_error.ok() ? slot->entry.error : entry.config_error;
      if (!error.ok()) {
        slot->state = VersionState::kFailed;
        slot->failure = error;
      }
      model.versions.emplace(slot->entry.version, std::move(slot));
    }
    entry.versions.clear();
    model.entry = std::move(entry);
  }
  models_ = std::move(next);
}

absl::StatusOr<const ModelStore::ModelSlot*> ModelStore::FindModelLocked(
    absl::string_view model) const {
  auto it = models_.find(model);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model \"", model, "\" not found"));
  }
  return &it->second;
}

absl::StatusOr<std::shared_ptr<const Snapshot>> ModelStore::AcquireSlotLocked(
    const LoadConfig& config, const std::shared_ptr<Slot>& keep, absl::Time deadline,
    bool* changed) {
  const std::string& name = config.name;
  // `keep` holds the slot across unlocked waits and loads even if a rescan
  // drops it meanwhile.
  Slot& slot = *keep;
  while (slot.state == VersionState::kLoading) {
    if (loaded_.WaitWithDeadline(&mu_, deadline) && slot.state == VersionState::kLoading) {
      return absl::UnavailableError(absl::StrCat("model \"", name, "\" version ",
                                                 slot.entry.version, " is still loading"));
    }
  }
  if (slot.state == VersionState::kReady) {
    slot.last_use = ++tick_;
    if (options_.metrics != nullptr) options_.metrics->Add(metrics::kCacheHits, kHostTier, 1);
    return slot.snapshot;
  }
  if (slot.state == VersionState::kFailed) return slot.failure;
  slot.state = VersionState::kLoading;
  const std::string path = slot.entry.path;
  const int64_t version = slot.entry.version;
  const uint64_t gpu_key = ++gpu_keys_;
  mu_.Unlock();
  const absl::Time start = absl::Now();
  absl::StatusOr<std::shared_ptr<const Snapshot>> loaded =
      Snapshot::Load(name, version, path, config.select);
  if (!loaded.ok() && options_.on_load_failure) {
    options_.on_load_failure(absl::StrCat("model \"", name, "\" version ", version,
                                          ": load failed: ", loaded.status().message()));
  }
  if (options_.metrics != nullptr) {
    options_.metrics->Add(metrics::kCacheMisses, kHostTier, 1);
    options_.metrics->Observe(metrics::kLoadSeconds, {{"result", loaded.ok() ? "ok" : "error"}},
                              absl::ToDoubleSeconds(absl::Now() - start));
  }
  // The GPU tier's copy is made before the version shows as ready.
  std::string gpu_note;
  bool gpu_retry = false;
  if (loaded.ok()) gpu_note = UploadToGpu(config.cache_tier, **loaded, gpu_key, "", &gpu_retry);
  mu_.Lock();
  *changed = true;
  loaded_.SignalAll();
  if (!loaded.ok()) {
    slot.state = VersionState::kFailed;
    slot.failure = loaded.status();
    return loaded.status();
  }
  slot.state = VersionState::kReady;
  slot.snapshot = *loaded;
  slot.last_use = ++tick_;
  slot.format = (*loaded)->format();
  slot.tensor_count = (*loaded)->default_view()->tensors().size();
  slot.bytes = (*loaded)->host_bytes();
  slot.select = (*loaded)->default_view()->select_path();
  absl::StatusOr<std::optional<int>> device = GpuTier::ParseCacheTier(config.cache_tier);
  slot.gpu_key = gpu_key;
  slot.gpu_device = device.ok() && device->has_value() ? **device : -1;
  slot.gpu_tier_config = config.cache_tier;
  slot.gpu_note = std::move(gpu_note);
  slot.gpu_retry = gpu_retry;
  EvictLocked(&slot);
  return loaded;
}

absl::StatusOr<std::shared_ptr<const Snapshot>> ModelStore::Acquire(absl::string_view model_name,
                                                                    int64_t version,
                                                                    absl::Time deadline) {
  bool changed = false;
  absl::StatusOr<std::shared_ptr<const Snapshot>> result;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<const ModelSlot*> model = FindModelLocked(model_name);
    if (!model.ok()) return model.status();
    if (version < 0) {
      return absl::InvalidArgumentError(absl::StrCat("version ", version, " is negative"));
    }
    if (version != 0) {
      auto it = (*model)->versions.find(version);
      if (it == (*model)->versions.end()) {
        return absl::NotFoundError(
            absl::StrCat("model \"", model_name, "\" has no version ", version));
      }
      result = AcquireSlotLocked(LoadConfigOf((*model)->entry), it->second, deadline, &changed);
    } else {
      result = absl::NotFoundError(NoVersions(model_name, (*model)->entry.no_versions_reason));
      bool first = true;
      // Newest first; a version that fails leaves the next older one serving.
      // Copy what is needed: the map may change while a load runs unlocked.
      const LoadConfig config = LoadConfigOf((*model)->entry);
      std::vector<std::shared_ptr<Slot>> slots;
      for (const auto& [v, slot] : (*model)->versions) slots.push_back(slot);
      for (const std::shared_ptr<Slot>& slot : slots) {
        absl::StatusOr<std::shared_ptr<const Snapshot>> got =
            AcquireSlotLocked(config, slot, deadline, &changed);
        if (got.ok()) {
          result = std::move(got);
          break;
        }
        if (first) result = std::move(got);
        first = false;
      }
    }
  }
  if (changed) NotifyChanged();
  return result;
}

void ModelStore::EvictLocked(const Slot* keep) {
  if (options_.host_cache_bytes == 0) return;
  uint64_t total = 0;
  for (const auto& [name, model] : models_) {
    for (const auto& [v, slot] : model.versions) {
      if (slot->snapshot != nullptr) total += slot->snapshot->host_bytes();
    }
  }
  while (total > options_.host_cache_bytes) {
    Slot* victim = nullptr;
    for (const auto& [name, model] : models_) {
      for (const auto& [v, slot] : model.versions) {
        // use_count 1: only the store holds it, no stream or request does.
        if (slot.get() == keep || slot->snapshot == nullptr || slot->snapshot.use_count() > 1) {
          continue;
        }
        if (victim == nullptr || slot->last_use < victim->last_use) victim = slot.get();
      }
    }
    if (victim == nullptr) return;  // everything left is in use
    total -= victim->snapshot->host_bytes();
    victim->snapshot.reset();
    victim->state = VersionState::kUnloaded;
    gpu_->Drop(victim->gpu_key);
    if (options_.metrics != nullptr) options_.metrics->Add(metrics::kCacheEvictions, kHostTier, 1);
  }
}

absl::StatusOr<ModelStatus> ModelStore::Load(absl::string_view model_name, int64_t version) {
  bool changed = false;
  absl::StatusOr<ModelStatus> status;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<const ModelSlot*> model = FindModelLocked(model_name);
    if (!model.ok()) return model.status();
    if ((*model)->versions.empty()) {
      return absl::NotFoundError(NoVersions(model_name, (*model)->entry.no_versions_reason));
    }
    auto it = version == 0 ? (*model)->versions.begin() : (*model)->versions.find(version);
    if (it == (*model)->versions.end()) {
      return absl::NotFoundError(
          absl::StrCat("model \"", model_name, "\" has no version ", version));
    }
    std::shared_ptr<Slot> slot = it->second;
    const bool fixed_error = !slot->entry.error.ok() || !(*model)->entry.config_error.ok();
    if (slot->state == VersionState::kFailed && !fixed_error) {
      slot->state = VersionState::kUnloaded;
      slot->failure = absl::OkStatus();
    }
    absl::StatusOr<std::shared_ptr<const Snapshot>> got =
        AcquireSlotLocked(LoadConfigOf((*model)->entry), slot, absl::InfiniteFuture(), &changed);
    if (!got.ok()) {
      status = got.status();
    } else {
      absl::StatusOr<const ModelSlot*> again = FindModelLocked(model_name);
      if (again.ok()) {
        status = StatusLocked(**again);
      } else {
        status = again.status();
      }
    }
  }
  if (changed) NotifyChanged();
  return status;
}

absl::Status ModelStore::Unload(absl::string_view model_name, int64_t version) {
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<const ModelSlot*> model = FindModelLocked(model_name);
    if (!model.ok()) return model.status();
    if (version != 0 && (*model)->versions.count(version) == 0) {
      return absl::NotFoundError(
          absl::StrCat("model \"", model_name, "\" has no version ", version));
    }
    for (const auto& [v, slot] : (*model)->versions) {
      if ((version == 0 || v == version) && slot->state == VersionState::kReady) {
        slot->snapshot.reset();
        slot->state = VersionState::kUnloaded;
        gpu_->Drop(slot->gpu_key);
      }
    }
  }
  NotifyChanged();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ModelStatus>> ModelStore::Rescan() {
  std::vector<SkippedEntry> skipped;
  absl::StatusOr<std::vector<ModelEntry>> scanned = Scan(options_, &skipped);
  if (!scanned.ok()) return scanned.status();
  {
    absl::MutexLock lock(&mu_);
    Install(*std::move(scanned));
    skipped_ = std::move(skipped);
  }
  NotifyChanged();
  return List();
}

ModelStatus ModelStore::StatusLocked(const ModelSlot& model) const {
  ModelStatus status;
  status.name = model.entry.name;
  for (const auto& [v, slot] : model.versions) {
    VersionStatus& out = status.versions.emplace_back();
    out.version = v;
    out.state = slot->state;
    if (slot->state == VersionState::kFailed) out.reason = std::string(slot->failure.message());
    out.format = slot->format;
    out.path = slot->entry.relative_path;
    out.tensor_count = slot->tensor_count;
    out.bytes = slot->bytes;
    if (slot->state == VersionState::kReady) {
      std::string evicted;
      if (slot->gpu_device >= 0 && gpu_->Resident(slot->gpu_key, &evicted)) {
        out.cache_tier = absl::StrCat("cuda:", slot->gpu_device);
      } else {
        out.cache_tier = "host";
        out.cache_note = !slot->gpu_note.empty() ? slot->gpu_note
                         : evicted.empty()       ? ""
                                                 : absl::StrCat(evicted, "; served from host "
                                                                "memory until the next Fetch "
                                                                "uploads it again");
      }
    }
    out.select = slot->select;
  }
  return status;
}

std::vector<ModelStatus> ModelStore::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ModelStatus> out;
  for (const auto& [name, model] : models_) out.push_back(StatusLocked(model));
  return out;
}

std::vector<SkippedEntry> ModelStore::Skipped() const {
  absl::ReaderMutexLock lock(&mu_);
  return skipped_;
}

absl::StatusOr<ModelStatus> ModelStore::Status(absl::string_view model_name) const {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const ModelSlot*> model = FindModelLocked(model_name);
  if (!model.ok()) return model.status();
  return StatusLocked(**model);
}

absl::StatusOr<v1::ModelConfig> ModelStore::Config(absl::string_view model_name) const {
  absl::ReaderMutexLock lock(&mu_);
  absl::StatusOr<const ModelSlot*> model = FindModelLocked(model_name);
  if (!model.ok()) return model.status();
  return (*model)->entry.config;
}

std::string ModelStore::UploadToGpu(const std::string& cache_tier, const Snapshot& snapshot,
                                    uint64_t key, const std::string& previous_note,
                                    bool* retry) {
  *retry = false;
  absl::StatusOr<std::optional<int>> device = GpuTier::ParseCacheTier(cache_tier);
  if (device.ok() && !device->has_value()) return "";
  absl::Status failed = device.status();
  if (device.ok()) {
    absl::StatusOr<std::shared_ptr<const GpuResidency>> resident =
        gpu_->Upload(key, snapshot.default_view(), **device);
    if (resident.ok()) return "";
    failed = resident.status();
    *retry = absl::IsResourceExhausted(failed);
  }
  std::string note = absl::StrCat("cache_tier \"", cache_tier, "\" not in effect: ",
                                  failed.message(), "; served from host memory");
  if (options_.on_warning && note != previous_note) {
    options_.on_warning(absl::StrCat("model \"", snapshot.model(), "\" version ",
                                     snapshot.version(), ": ", note));
  }
  return note;
}

std::shared_ptr<const GpuResidency> ModelStore::Residency(
    const std::shared_ptr<const Snapshot>& snapshot) {
  std::shared_ptr<Slot> slot;
  uint64_t key;
  std::string cache_tier;
  std::string previous_note;
  {
    absl::MutexLock lock(&mu_);
    auto model = models_.find(snapshot->model());
    if (model == models_.end()) return nullptr;
    auto it = model->second.versions.find(snapshot->version());
    if (it == model->second.versions.end()) return nullptr;
    slot = it->second;
    if (slot->snapshot != snapshot || slot->gpu_device < 0) return nullptr;
    if (std::shared_ptr<const GpuResidency> found = gpu_->Find(slot->gpu_key)) return found;
    // Uploaded once and evicted since, or refused for want of room: try
    // again; one caller at a time, the others are served from host.
    if (slot->uploading || !(slot->gpu_note.empty() || slot->gpu_retry)) return nullptr;
    slot->uploading = true;
    key = slot->gpu_key;
    cache_tier = slot->gpu_tier_config;
    previous_note = slot->gpu_note;
  }
  bool retry = false;
  std::string note = UploadToGpu(cache_tier, *snapshot, key, previous_note, &retry);
  absl::MutexLock lock(&mu_);
  slot->uploading = false;
  if (slot->snapshot != snapshot || slot->gpu_key != key) {
    // Unloaded or reloaded meanwhile: the copy belongs to no one.
    gpu_->Drop(key);
    return nullptr;
  }
  slot->gpu_note = std::move(note);
  slot->gpu_retry = retry;
  return gpu_->Find(key);
}

std::shared_ptr<const GpuResidency> ModelStore::ResidencyForFetch(
    const std::shared_ptr<const Snapshot>& snapshot) {
  return options_.gpu_fetch_from_device ? Residency(snapshot) : nullptr;
}

uint64_t ModelStore::host_bytes() const {
  absl::ReaderMutexLock lock(&mu_);
  uint64_t total = 0;
  for (const auto& [name, model] : models_) {
    for (const auto& [v, slot] : model.versions) {
      if (slot->snapshot != nullptr) total += slot->snapshot->host_bytes();
    }
  }
  return total;
}

void ModelStore::SetListener(std::function<void()> listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
}

void ModelStore::NotifyChanged() {
  absl::MutexLock lock(&listener_mu_);
  if (listener_) listener_();
}

}  // namespace weightd
