#include "server/gpu/host_backend.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"

namespace weightd {
namespace {

// Device allocations are 256-byte aligned, as cudaMalloc's are.
constexpr size_t kAlignment = 256;

}  // namespace

// One worker thread runs the stream's copies in order.
class HostCopyStream final : public CopyStream {
 public:
  HostCopyStream(HostBackend* backend, int device) : backend_(backend), device_(device) {
    worker_ = std::thread([this] { Run(); });
  }
  ~HostCopyStream() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      work_.Signal();
    }
    worker_.join();  // runs what is queued first, as cudaStreamSynchronize
  }

  absl::StatusOr<uint64_t> CopyToHostAsync(void* dst, const void* src, uint64_t bytes) override {
    if (!backend_->IsDeviceRange(device_, src, bytes)) {
      return absl::InvalidArgumentError(absl::StrCat("device-to-host copy of ", bytes,
                                                     " bytes: source is not memory of ",
                                                     "emulated device ", device_));
    }
    backend_->copies_started_.fetch_add(1);
    bool fail = false;
    for (int n = backend_->fail_copies_.load(); n > 0;) {
      if (backend_->fail_copies_.compare_exchange_weak(n, n - 1)) {
        fail = true;
        break;
      }
    }
    absl::MutexLock lock(&mu_);
    queue_.push_back({++submitted_, dst, src, bytes, fail});
    work_.Signal();
    return submitted_;
  }

  absl::Status Wait(uint64_t ticket) override {
    absl::MutexLock lock(&mu_);
    if (ticket > submitted_) {
      return absl::InvalidArgumentError(absl::StrCat("copy ticket ", ticket, " was never issued"));
    }
    while (completed_ < ticket) done_.Wait(&mu_);
    if (failed_ != 0 && failed_ <= ticket) {
      const uint64_t failed = failed_;
      failed_ = 0;
      return absl::InternalError(absl::StrCat("device-to-host copy ", failed, " from emulated ",
                                              "device ", device_, " failed (injected)"));
    }
    return absl::OkStatus();
  }

 private:
  struct Copy {
    uint64_t ticket;
    void* dst;
    const void* src;
    uint64_t bytes;
    bool fail;
  };

  void Run() {
    for (;;) {
      Copy copy;
      {
        absl::MutexLock lock(&mu_);
        while (!stop_ && queue_.empty()) work_.Wait(&mu_);
        if (queue_.empty()) return;
        copy = queue_.front();
        queue_.pop_front();
      }
      if (backend_->options_.copy_delay > absl::ZeroDuration()) {
        absl::SleepFor(backend_->options_.copy_delay);
      }
      if (!copy.fail) std::memcpy(copy.dst, copy.src, copy.bytes);
      absl::MutexLock lock(&mu_);
      if (copy.fail && failed_ == 0) failed_ = copy.ticket;
      completed_ = copy.ticket;
      done_.SignalAll();
    }
  }

  HostBackend* const backend_;
  const int device_;
  absl::Mutex mu_;
  std::deque<Copy> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  absl::CondVar work_;  // a copy was queued, or stop_
  absl::CondVar done_;  // completed_ moved
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

HostBackend::HostBackend(HostBackendOptions options) : options_(std::move(options)) {}

HostBackend::~HostBackend() {
  absl::MutexLock lock(&mu_);
  for (auto& [device, allocations] : allocations_) {
    for (auto& [address, bytes] : allocations) std::free(reinterpret_cast<void*>(address));
  }
  for (void* ptr : pinned_) std::free(ptr);
}

absl::Status HostBackend::CheckDevice(int device) const {
  if (device < 0 || device >= options_.devices) {
    return absl::FailedPreconditionError(absl::StrCat(
        "emulated device ", device, " does not exist (", options_.devices, " devices)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceInfo> HostBackend::Info(int device) {
  absl::Status ok = CheckDevice(device);
  if (!ok.ok()) return ok;
  DeviceInfo info;
  info.index = device;
  info.name = "host-emulated device";
  info.uuid = absl::StrCat("GPU-", options_.uuid_prefix, "-", device);
  info.pci_bus_id = absl::StrCat("0000:", absl::Hex(device, absl::kZeroPad2), ":00.0");
  info.total_bytes = options_.memory_bytes;
  return info;
}

absl::StatusOr<bool> HostBackend::CanAccessPeer(int device, int peer) {
  absl::Status ok = CheckDevice(device);
  if (ok.ok()) ok = CheckDevice(peer);
  if (!ok.ok()) return ok;
  return device == peer || (options_.no_peer_access.count({device, peer}) == 0 &&
                            options_.no_peer_access.count({peer, device}) == 0);
}

absl::StatusOr<void*> HostBackend::Allocate(int device, uint64_t bytes) {
  absl::Status ok = CheckDevice(device);
  if (!ok.ok()) return ok;
  absl::MutexLock lock(&mu_);
  if (allocated_[device] + bytes > options_.memory_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("emulated device ", device, ": out of memory allocating ", bytes, " bytes (",
                     allocated_[device], " of ", options_.memory_bytes, " in use)"));
  }
  void* ptr = std::aligned_alloc(
      kAlignment, (std::max<uint64_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment);
  if (ptr == nullptr) return absl::ResourceExhaustedError("aligned_alloc failed");
  allocations_[device][reinterpret_cast<uintptr_t>(ptr)] = bytes;
  allocated_[device] += bytes;
  return ptr;
}

void HostBackend::Free(int device, void* ptr) {
  absl::MutexLock lock(&mu_);
  auto& allocations = allocations_[device];
  auto it = allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == allocations.end()) return;
  allocated_[device] -= it->second;
  allocations.erase(it);
  std::free(ptr);
}

bool HostBackend::IsDeviceRange(int device, const void* ptr, uint64_t bytes) const {
  absl::MutexLock lock(&mu_);
  auto found = allocations_.find(device);
  if (found == allocations_.end()) return false;
  const uintptr_t address = reinterpret_cast<uintptr_t>(ptr);
  auto it = found->second.upper_bound(address);
  if (it == found->second.begin()) return false;
  --it;
  return address + bytes <= it->first + it->second;
}

absl::Status HostBackend::CopyToDevice(int device, void* dst, const void* src, uint64_t bytes) {
  if (!IsDeviceRange(device, dst, bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "host-to-device copy of ", bytes, " bytes: not memory of emulated device ", device));
  }
  std::memcpy(dst, src, bytes);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CopyStream>> HostBackend::CreateStream(int device) {
  absl::Status ok = CheckDevice(device);
  if (!ok.ok()) return ok;
  return std::unique_ptr<CopyStream>(new HostCopyStream(this, device));
}

absl::StatusOr<void*> HostBackend::AllocatePinned(uint64_t bytes) {
  void* ptr = std::aligned_alloc(
      kAlignment, (std::max<uint64_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment);
  if (ptr == nullptr) return absl::ResourceExhaustedError("aligned_alloc failed");
  absl::MutexLock lock(&mu_);
  pinned_.insert(ptr);
  ++pinned_total_;
  return ptr;
}

void HostBackend::FreePinned(void* ptr) {
  absl::MutexLock lock(&mu_);
  if (pinned_.erase(ptr) != 0) std::free(ptr);
}

absl::StatusOr<IpcMemHandle> HostBackend::IpcHandle(int device, void* base) {
  {
    absl::MutexLock lock(&mu_);
    auto& allocations = allocations_[device];
    if (allocations.count(reinterpret_cast<uintptr_t>(base)) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("IPC handle: not the base of an allocation on emulated device ", device));
    }
  }
  // A placeholder naming the process, device and address: unique per
  // allocation, which is all the export logic relies on.
  IpcMemHandle handle{};
  const std::string text =
      absl::StrCat("hostemu-ipc:", getpid(), ":", device, ":", reinterpret_cast<uintptr_t>(base));
  std::memcpy(handle.data(), text.data(), std::min(text.size(), handle.size()));
  return handle;
}

uint64_t HostBackend::allocated_bytes(int device) const {
  absl::MutexLock lock(&mu_);
  auto it = allocated_.find(device);
  return it == allocated_.end() ? 0 : it->second;
}

int HostBackend::live_allocations() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [device, allocations] : allocations_) n += allocations.size();
  return n;
}

int HostBackend::pinned_allocated_total() const {
  absl::MutexLock lock(&mu_);
  return pinned_total_;
}

int HostBackend::live_pinned() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(pinned_.size());
}

}  // namespace weightd
