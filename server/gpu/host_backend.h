// Emulated devices in host memory: a stand-in for GPUs that are absent on
// the development and CI machines, so that the GPU tier's logic (budgets,
// LRU, residency while held, staging and pipelining, IPC export) is tested
// everywhere. "Device memory" is malloc'd host memory that only this backend
// hands out; device-to-host copies run on a thread per stream, so they are
// asynchronous as CUDA's are. IPC handles are placeholders that no other
// process can open. Not for production use.
#ifndef WEIGHTD_SERVER_GPU_HOST_BACKEND_H_
#define WEIGHTD_SERVER_GPU_HOST_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/gpu/device_backend.h"

namespace weightd {

struct HostBackendOptions {
  int devices = 1;
  // Per device; Allocate answers ResourceExhausted past it, as cudaMalloc
  // does when the device is full.
  uint64_t memory_bytes = uint64_t{1} << 30;
  // Device pairs without peer access (both orders); all others have it.
  std::set<std::pair<int, int>> no_peer_access;
  // Slept by each asynchronous copy before it copies, so that tests can see
  // copies overlap with the consumer.
  absl::Duration copy_delay = absl::ZeroDuration();
  // Device uuids are "GPU-<uuid_prefix>-<index>"; two backends with other
  // prefixes stand for two sets of devices.
  std::string uuid_prefix = "hostemu";
};

// Thread-safe.
class HostBackend final : public DeviceBackend {
 public:
  explicit HostBackend(HostBackendOptions options = {});
  ~HostBackend() override;

  std::string name() const override { return "host-emulated"; }
  absl::StatusOr<int> DeviceCount() override { return options_.devices; }
  absl::StatusOr<DeviceInfo> Info(int device) override;
  absl::StatusOr<bool> CanAccessPeer(int device, int peer) override;
  absl::StatusOr<void*> Allocate(int device, uint64_t bytes) override;
  void Free(int device, void* ptr) override;
  absl::Status CopyToDevice(int device, void* dst, const void* src, uint64_t bytes) override;
  absl::StatusOr<std::unique_ptr<CopyStream>> CreateStream(int device) override;
  absl::StatusOr<void*> AllocatePinned(uint64_t bytes) override;
  void FreePinned(void* ptr) override;
  absl::StatusOr<IpcMemHandle> IpcHandle(int device, void* base) override;

  // What tests check: device bytes and allocations alive, pinned buffers
  // ever allocated and alive, asynchronous copies ever started.
  uint64_t allocated_bytes(int device) const;
  int live_allocations() const;
  int pinned_allocated_total() const;
  int live_pinned() const;
  int copies_started() const { return copies_started_.load(); }
  // Makes the next `n` asynchronous copies fail (their Wait says so).
  void FailNextCopies(int n) { fail_copies_.store(n); }

  // Whether [ptr, ptr+bytes) lies inside one live allocation of `device`.
  bool IsDeviceRange(int device, const void* ptr, uint64_t bytes) const;

 private:
  friend class HostCopyStream;
  absl::Status CheckDevice(int device) const;

  const HostBackendOptions options_;
  mutable absl::Mutex mu_;
  // device -> (address -> bytes)
  std::map<int, std::map<uintptr_t, uint64_t>> allocations_ ABSL_GUARDED_BY(mu_);
  std::map<int, uint64_t> allocated_ ABSL_GUARDED_BY(mu_);
  std::set<void*> pinned_ ABSL_GUARDED_BY(mu_);
  int pinned_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int> copies_started_{0};
  std::atomic<int> fail_copies_{0};
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_GPU_HOST_BACKEND_H_
