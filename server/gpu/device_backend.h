// The device memory the GPU cache tier needs, behind one interface: the CUDA
// runtime (cuda_backend.h) in the daemon, emulated devices in host memory
// (host_backend.h) in tests. Nothing outside server/gpu/ includes a CUDA
// header; the tier (server/cache/gpu_tier.h) is written against this.
#ifndef WEIGHTD_SERVER_GPU_DEVICE_BACKEND_H_
#define WEIGHTD_SERVER_GPU_DEVICE_BACKEND_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace weightd {

struct DeviceInfo {
  int index = 0;     // this process's ordinal (after CUDA_VISIBLE_DEVICES)
  std::string name;  // "NVIDIA H200"
  // "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi -L prints it:
  // the one name two processes with different CUDA_VISIBLE_DEVICES agree on.
  std::string uuid;
  std::string pci_bus_id;  // "0000:1b:00.0"
  uint64_t total_bytes = 0;
};

// cudaIpcMemHandle_t's bytes (CUDA_IPC_HANDLE_SIZE).
using IpcMemHandle = std::array<uint8_t, 64>;

// An ordered queue of device-to-host copies (a cudaStream_t and its events).
// Not thread-safe: one user at a time. The destructor waits for the copies
// in flight, so their destinations may be reused once it returns.
class CopyStream {
 public:
  virtual ~CopyStream() = default;
  // Enqueues a copy of `bytes` bytes from device memory `src` to `dst`
  // (pinned memory from AllocatePinned, for the copy to be asynchronous);
  // returns a ticket for Wait.
  virtual absl::StatusOr<uint64_t> CopyToHostAsync(void* dst, const void* src, uint64_t bytes) = 0;
  // Blocks until the copy `ticket` (and every one before it) has completed;
  // the error of a failed copy names the CUDA error.
  virtual absl::Status Wait(uint64_t ticket) = 0;
};

// Thread-safe. Device pointers are only meaningful to the backend that made
// them; `device` is an ordinal below DeviceCount().
class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;

  // "cuda" or "host-emulated"; for logs.
  virtual std::string name() const = 0;
  // The devices this process may use. An error saying why there are none
  // (no driver, no device, WEIGHTD_CUDA=OFF): callers serve from host and
  // show the message.
  virtual absl::StatusOr<int> DeviceCount() = 0;
  virtual absl::StatusOr<DeviceInfo> Info(int device) = 0;
  // Whether `device` can map memory of `peer` (cudaDeviceCanAccessPeer);
  // true when they are the same device.
  virtual absl::StatusOr<bool> CanAccessPeer(int device, int peer) = 0;

  // Device memory (cudaMalloc, so that cudaIpcGetMemHandle works on it).
  // ResourceExhausted when the device is out of memory.
  virtual absl::StatusOr<void*> Allocate(int device, uint64_t bytes) = 0;
  virtual void Free(int device, void* ptr) = 0;
  // Synchronous host-to-device copy from any host memory (an mmap too).
  virtual absl::Status CopyToDevice(int device, void* dst, const void* src, uint64_t bytes) = 0;
  virtual absl::StatusOr<std::unique_ptr<CopyStream>> CreateStream(int device) = 0;

  // Page-locked host memory usable with every device (cudaHostAllocPortable).
  virtual absl::StatusOr<void*> AllocatePinned(uint64_t bytes) = 0;
  virtual void FreePinned(void* ptr) = 0;

  // The IPC handle of the allocation at `base` (a pointer Allocate returned):
  // another process opens it with cudaIpcOpenMemHandle.
  virtual absl::StatusOr<IpcMemHandle> IpcHandle(int device, void* base) = 0;
};

// The CUDA runtime backend; in a weightd built without CUDA
// (WEIGHTD_CUDA=OFF) a backend whose DeviceCount says so. Never null. One
// per process is enough (cuda_backend.cc keeps no per-instance device state).
std::shared_ptr<DeviceBackend> CudaBackend();
// Whether this binary was built with the CUDA backend.
bool BuiltWithCuda();

}  // namespace weightd

#endif  // WEIGHTD_SERVER_GPU_DEVICE_BACKEND_H_
