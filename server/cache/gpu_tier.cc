#include "server/cache/gpu_tier.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "server/cache/device_reader.h"
#include "server/metrics/weightd_metrics.h"

namespace weightd {
namespace gpu_internal {

// What residencies share with the tier, so that one outliving the tier
// (held by a stream at shutdown) can still free itself.
struct TierState {
  std::shared_ptr<DeviceBackend> backend;
  std::shared_ptr<StagingPool> staging;
  MetricsRegistry* metrics = nullptr;

  struct Entry {
    std::shared_ptr<const GpuResidency> residency;  // null once evicted
    int device = 0;
    uint64_t last_use = 0;
    std::string evicted;  // why it is not resident any more
  };
  absl::Mutex mu;
  std::map<uint64_t, Entry> entries ABSL_GUARDED_BY(mu);
  std::vector<uint64_t> allocated ABSL_GUARDED_BY(mu);  // per device, until freed
  std::vector<uint64_t> evictions ABSL_GUARDED_BY(mu);
  uint64_t tick ABSL_GUARDED_BY(mu) = 0;
};

}  // namespace gpu_internal
namespace {

// cudaMalloc's alignment; every tensor starts at such an offset, so a client
// mapping the allocation can make tensors of any dtype at base + offset.
constexpr uint64_t kTensorAlignment = 256;

std::string TierName(int device) { return absl::StrCat("cuda:", device); }

std::string Bytes(uint64_t n) {
  if (n >= (uint64_t{1} << 30)) return absl::StrFormat("%.2f GiB", n / 1073741824.0);
  if (n >= (uint64_t{1} << 20)) return absl::StrFormat("%.1f MiB", n / 1048576.0);
  return absl::StrCat(n, " bytes");
}

}  // namespace

GpuResidency::~GpuResidency() {
  if (base_ == nullptr) return;
  state_->backend->Free(device_, base_);
  absl::MutexLock lock(&state_->mu);
  state_->allocated[device_] -= bytes_;
}

std::string GpuResidency::tier() const { return TierName(device_); }
DeviceBackend& GpuResidency::backend() const { return *state_->backend; }
const std::shared_ptr<StagingPool>& GpuResidency::staging() const { return state_->staging; }

GpuTier::GpuTier(std::shared_ptr<DeviceBackend> backend, GpuTierOptions options)
    : state_(std::make_shared<gpu_internal::TierState>()) {
  state_->backend = std::move(backend);
  state_->metrics = options.metrics;
  state_->staging = StagingPool::Create(state_->backend, options.staging_buffer_bytes,
                                        options.max_staging_buffers);
  absl::StatusOr<int> count = state_->backend->DeviceCount();
  if (!count.ok()) {
    availability_ = count.status();
  } else {
    for (int d = 0; d < *count; ++d) {
      absl::StatusOr<DeviceInfo> info = state_->backend->Info(d);
      if (!info.ok()) {
        availability_ = info.status();
        devices_.clear();
        break;
      }
      devices_.push_back(*std::move(info));
    }
  }
  for (const DeviceInfo& info : devices_) {
    budgets_.push_back(options.budget_bytes != 0 ? options.budget_bytes : info.total_bytes / 2);
  }
  absl::MutexLock lock(&state_->mu);
  state_->allocated.assign(devices_.size(), 0);
  state_->evictions.assign(devices_.size(), 0);
}

GpuTier::~GpuTier() {
  std::map<uint64_t, gpu_internal::TierState::Entry> entries;
  {
    absl::MutexLock lock(&state_->mu);
    entries.swap(state_->entries);
  }
  // Residencies die here, outside the lock their destructors take.
}

absl::StatusOr<std::optional<int>> GpuTier::ParseCacheTier(absl::string_view tier) {
  if (tier.empty() || tier == "host" || tier == "pinned") return std::optional<int>();
  // "cuda" alone is torch.device("cuda"): the current device, 0 here.
  if (tier == "cuda") return std::optional<int>(0);
  int device = 0;
  absl::string_view index = tier;
  if (absl::ConsumePrefix(&index, "cuda:") && !index.empty() && index.size() <= 4 &&
      std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      absl::SimpleAtoi(index, &device)) {
    return std::optional<int>(device);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("cache_tier \"", tier, "\" is not \"host\", \"pinned\" or \"cuda:N\""));
}

uint64_t GpuTier::budget_bytes(int device) const {
  return device >= 0 && device < device_count() ? budgets_[device] : 0;
}

std::string GpuTier::Describe() const {
  if (!availability_.ok()) return absl::StrCat("GPU tier off: ", availability_.message());
  std::string out = absl::StrCat("GPU tier on (", state_->backend->name(), "): ");
  for (const DeviceInfo& info : devices_) {
    absl::StrAppend(&out, info.index == 0 ? "" : "; ", TierName(info.index), " ", info.name, " ",
                    info.uuid, " ", info.pci_bus_id, ", ", Bytes(info.total_bytes), ", budget ",
                    Bytes(budgets_[info.index]));
  }
  return out;
}

absl::StatusOr<DeviceInfo> GpuTier::Info(int device) const {
  if (!availability_.ok()) return availability_;
  if (device < 0 || device >= device_count()) {
    return absl::NotFoundError(absl::StrCat(TierName(device), " does not exist"));
  }
  return devices_[device];
}

DeviceBackend& GpuTier::backend() const { return *state_->backend; }

absl::StatusOr<std::shared_ptr<const GpuResidency>> GpuTier::Upload(
    uint64_t key, std::shared_ptr<const StateDictView> view, int device) {
  const std::string tier = TierName(device);
  if (!availability_.ok()) return absl::FailedPreconditionError(availability_.message());
  if (device < 0 || device >= device_count()) {
    return absl::FailedPreconditionError(absl::StrCat(tier, " does not exist: ", device_count(),
                                                      " device", device_count() == 1 ? "" : "s",
                                                      " visible to weightd"));
  }
  auto residency = std::shared_ptr<GpuResidency>(new GpuResidency());
  residency->device_ = device;
  residency->view_ = view;
  uint64_t total = 0;
  for (const auto& [name, record] : view->tensors()) {
    total = (total + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    residency->placements_.push_back({total, record.nbytes()});
    total += record.nbytes();
  }
  total = std::max<uint64_t>(total, kTensorAlignment);  // cudaMalloc(0) gives no pointer
  const uint64_t budget = budgets_[device];
  if (total > budget) {
    return absl::FailedPreconditionError(absl::StrCat("the state dict needs ", Bytes(total), " on ",
                                                      tier, ", more than its budget of ",
                                                      Bytes(budget), " (--gpu_cache_bytes)"));
  }
  std::vector<std::shared_ptr<const GpuResidency>> victims;
  {
    absl::MutexLock lock(&state_->mu);
    auto found = state_->entries.find(key);
    if (found != state_->entries.end() && found->second.residency != nullptr) {
      return found->second.residency;
    }
    uint64_t allocated = state_->allocated[device];
    while (allocated + total > budget) {
      gpu_internal::TierState::Entry* victim = nullptr;
      for (auto& [k, entry] : state_->entries) {
        // use_count 1: only the tier holds it; no stream, no IPC lease.
        if (entry.device != device || entry.residency == nullptr ||
            entry.residency.use_count() > 1) {
          continue;
        }
        if (victim == nullptr || entry.last_use < victim->last_use) victim = &entry;
      }
      if (victim == nullptr) {
        return absl::ResourceExhaustedError(
            absl::StrCat(tier, " budget: ", Bytes(allocated), " of ", Bytes(budget),
                         " are held by models in use (Fetch streams or IPC leases); ", Bytes(total),
                         " more needed"));
      }
      allocated -= victim->residency->bytes();
      victims.push_back(std::move(victim->residency));
      victim->residency = nullptr;
      victim->evicted = absl::StrCat("evicted from ", tier,
                                     " (least recently used, to make room under its budget of ",
                                     Bytes(budget), ")");
      ++state_->evictions[device];
      if (state_->metrics != nullptr) {
        state_->metrics->Add(metrics::kCacheEvictions, {{"tier", tier}}, 1);
      }
    }
    // Reserved before allocating, so concurrent uploads cannot overshoot.
    state_->allocated[device] += total;
  }
  victims.clear();  // freed here, outside the lock their destructors take
  if (state_->metrics != nullptr) state_->metrics->Add(metrics::kCacheMisses, {{"tier", tier}}, 1);
  auto unreserve = [&] {
    absl::MutexLock lock(&state_->mu);
    state_->allocated[device] -= total;
  };
  absl::StatusOr<void*> base = state_->backend->Allocate(device, total);
  if (!base.ok()) {
    unreserve();
    if (absl::IsResourceExhausted(base.status())) return base.status();
    return absl::FailedPreconditionError(base.status().message());
  }
  // From here the residency's destructor frees and unreserves.
  residency->state_ = state_;
  residency->base_ = *base;
  residency->bytes_ = total;
  std::vector<uint8_t> strided;
  for (size_t i = 0; i < view->tensors().size(); ++i) {
    const auto& [name, record] = view->tensors()[i];
    if (record.nbytes() == 0) continue;
    absl::Span<const uint8_t> bytes = record.ContiguousBytes(&strided);
    absl::Status copied = state_->backend->CopyToDevice(
        device, static_cast<uint8_t*>(*base) + residency->placements_[i].offset, bytes.data(),
        bytes.size());
    if (!copied.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("tensor \"", name, "\" to ", tier, ": ", copied.message()));
    }
    // The bytes were just read: checksum them now, so a Fetch served from
    // the device never reads the host copy.
    view->Checksum(i);
  }
  std::shared_ptr<const GpuResidency> kept;
  {
    absl::MutexLock lock(&state_->mu);
    gpu_internal::TierState::Entry& entry = state_->entries[key];
    if (entry.residency == nullptr) {
      entry.residency = residency;
      entry.device = device;
      entry.evicted.clear();
    }
    entry.last_use = ++state_->tick;
    kept = entry.residency;
  }
  return kept;  // a concurrent upload of the key may have won; ours is freed
}

std::shared_ptr<const GpuResidency> GpuTier::Find(uint64_t key) {
  absl::MutexLock lock(&state_->mu);
  auto it = state_->entries.find(key);
  if (it == state_->entries.end() || it->second.residency == nullptr) return nullptr;
  it->second.last_use = ++state_->tick;
  if (state_->metrics != nullptr) {
    state_->metrics->Add(metrics::kCacheHits, {{"tier", TierName(it->second.device)}}, 1);
  }
  return it->second.residency;
}

bool GpuTier::Resident(uint64_t key, std::string* why_not) const {
  absl::MutexLock lock(&state_->mu);
  auto it = state_->entries.find(key);
  if (it != state_->entries.end() && it->second.residency != nullptr) return true;
  if (why_not != nullptr) *why_not = it == state_->entries.end() ? "" : it->second.evicted;
  return false;
}

void GpuTier::Drop(uint64_t key) {
  std::shared_ptr<const GpuResidency> dropped;  // freed after the lock is let go
  absl::MutexLock lock(&state_->mu);
  auto it = state_->entries.find(key);
  if (it == state_->entries.end()) return;
  dropped = std::move(it->second.residency);
  state_->entries.erase(it);
}

std::vector<GpuDeviceUsage> GpuTier::Usage() const {
  absl::MutexLock lock(&state_->mu);
  std::vector<GpuDeviceUsage> out(devices_.size());
  for (size_t d = 0; d < devices_.size(); ++d) {
    out[d].device = static_cast<int>(d);
    out[d].budget_bytes = budgets_[d];
    out[d].allocated_bytes = state_->allocated[d];
    out[d].evictions = state_->evictions[d];
  }
  for (const auto& [key, entry] : state_->entries) {
    if (entry.residency == nullptr) continue;
    out[entry.device].resident_bytes += entry.residency->bytes();
    ++out[entry.device].residencies;
  }
  return out;
}

}  // namespace weightd
