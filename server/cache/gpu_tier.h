// The GPU cache tier: state dicts resident in device memory, under a byte
// budget per device with LRU eviction. No gRPC and no CUDA header here: the
// tier is written against DeviceBackend (server/gpu/device_backend.h), the
// CUDA runtime in the daemon, emulated devices in tests.
//
// A residency is one snapshot's served state dict (its default view) on one
// device, in a single allocation: every tensor row-major in its stored dtype
// at a 256-byte aligned offset, so one IPC handle covers the whole model.
// The tier holds one reference per key (the store's); a stream or an IPC
// lease holds more. Eviction drops only the tier's reference, and only of
// residencies nobody else holds; device memory is freed when the last
// reference goes. Budget accounting counts an allocation from its upload
// until it is freed, so memory still held past an unload counts too.
#ifndef WEIGHTD_SERVER_CACHE_GPU_TIER_H_
#define WEIGHTD_SERVER_CACHE_GPU_TIER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/cache/snapshot.h"
#include "server/gpu/device_backend.h"
#include "server/metrics/registry.h"

namespace weightd {

class StagingPool;

struct GpuTierOptions {
  // Budget per device in bytes (each device's memory is its own limit);
  // 0: half of the device's total memory, so that a trainer sharing the GPU
  // keeps the rest.
  uint64_t budget_bytes = 0;
  // Pinned host buffers that device-to-host Fetch stages through
  // (server/cache/device_reader.h): size of one, and how many may exist.
  uint64_t staging_buffer_bytes = 4 << 20;
  int max_staging_buffers = 64;
  // Evictions, hits and misses under {tier="cuda:N"}; null: nowhere.
  MetricsRegistry* metrics = nullptr;
};

struct GpuDeviceUsage {
  int device = 0;
  uint64_t budget_bytes = 0;
  // Device bytes allocated by the tier and not yet freed, held past
  // eviction or unload included.
  uint64_t allocated_bytes = 0;
  uint64_t resident_bytes = 0;  // of residencies the tier holds
  int residencies = 0;          // that the tier holds
  uint64_t evictions = 0;
};

namespace gpu_internal {
struct TierState;
}  // namespace gpu_internal

// One state dict in device memory. Thread-safe (immutable). The memory is
// freed when the last shared_ptr goes, not before.
class GpuResidency {
 public:
  struct Placement {
    uint64_t offset = 0;  // from base()
    uint64_t bytes = 0;
  };

  ~GpuResidency();
  GpuResidency(const GpuResidency&) = delete;
  GpuResidency& operator=(const GpuResidency&) = delete;

  int device() const { return device_; }
  std::string tier() const;  // "cuda:N"
  void* base() const { return base_; }
  uint64_t bytes() const { return bytes_; }
  // The state dict it holds; placement(i) is view()->tensors()[i]'s.
  const std::shared_ptr<const StateDictView>& view() const { return view_; }
  const Placement& placement(size_t index) const { return placements_[index]; }
  const uint8_t* data(size_t index) const {
    return static_cast<const uint8_t*>(base_) + placements_[index].offset;
  }
  DeviceBackend& backend() const;
  // Where device-to-host readers of this residency stage.
  const std::shared_ptr<StagingPool>& staging() const;

 private:
  friend class GpuTier;
  GpuResidency() = default;

  std::shared_ptr<gpu_internal::TierState> state_;
  int device_ = 0;
  void* base_ = nullptr;
  uint64_t bytes_ = 0;
  std::shared_ptr<const StateDictView> view_;
  std::vector<Placement> placements_;
};

// Thread-safe. Never calls back into its callers, so it may be used under
// their locks (the store's).
class GpuTier {
 public:
  // Asks `backend` for its devices once; with none (no driver, no CUDA in
  // this build), availability() says why and every Upload fails with it.
  GpuTier(std::shared_ptr<DeviceBackend> backend, GpuTierOptions options);
  ~GpuTier();

  // A model.pbtxt cache_tier: "", "host" and "pinned" (host tier, mmap):
  // nullopt; "cuda:N": N; InvalidArgument otherwise.
  static absl::StatusOr<std::optional<int>> ParseCacheTier(absl::string_view tier);

  // OK when there are devices, else why not.
  const absl::Status& availability() const { return availability_; }
  int device_count() const { return static_cast<int>(devices_.size()); }
  uint64_t budget_bytes(int device) const;
  // For logs: "cuda: 2 devices (NVIDIA H200 ...), budget ... per device".
  std::string Describe() const;
  // Of the devices found at start.
  absl::StatusOr<DeviceInfo> Info(int device) const;
  DeviceBackend& backend() const;

  // Makes `view` resident on `device` under `key` (an existing residency
  // of the key is returned as is), evicting least recently used residencies
  // of that device that nobody but the tier holds. Errors, for the caller to
  // serve from host and show:
  //  FailedPrecondition: no device, no such device, larger than the budget,
  //    a failed copy (retrying will not help);
  //  ResourceExhausted: the budget is taken by residencies in use, or the
  //    device is out of memory (may work later).
  absl::StatusOr<std::shared_ptr<const GpuResidency>> Upload(
      uint64_t key, std::shared_ptr<const StateDictView> view, int device);
  // The residency of `key` (and marks it used), or null.
  std::shared_ptr<const GpuResidency> Find(uint64_t key);
  // Whether `key` is resident (without marking it used); if not, why: its
  // eviction, or empty when it never was.
  bool Resident(uint64_t key, std::string* why_not = nullptr) const;
  // Drops the tier's reference and what it knows of `key`.
  void Drop(uint64_t key);

  std::vector<GpuDeviceUsage> Usage() const;

 private:
  std::shared_ptr<gpu_internal::TierState> state_;
  absl::Status availability_;
  std::vector<DeviceInfo> devices_;
  std::vector<uint64_t> budgets_;
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_CACHE_GPU_TIER_H_
