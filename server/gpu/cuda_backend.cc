// DeviceBackend on the CUDA runtime API (cuda_runtime_api.h, linked
// statically: the daemon starts, and reports "no device", on a machine
// without the driver or the toolkit's libraries). The only file of weightd
// that includes a CUDA header.
#include <cuda_runtime_api.h>

#include <cstring>
#include <deque>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/gpu/device_backend.h"

namespace weightd {
namespace {

static_assert(sizeof(cudaIpcMemHandle_t) == sizeof(IpcMemHandle),
              "IpcMemHandle must hold a cudaIpcMemHandle_t");

// "cudaMalloc(1073741824 bytes) on cuda:0: cudaErrorMemoryAllocation (out of
// memory)", with a code callers can act on.
absl::Status CudaError(cudaError_t error, absl::string_view what) {
  std::string message =
      absl::StrCat(what, ": ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")");
  switch (error) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorNotSupported:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

#define WEIGHTD_CUDA_TRY(call, what)                 \
  do {                                               \
    cudaError_t weightd_cuda_error_ = (call);        \
    if (weightd_cuda_error_ != cudaSuccess) {        \
      return CudaError(weightd_cuda_error_, (what)); \
    }                                                \
  } while (0)

std::string Where(int device) { return absl::StrCat("cuda:", device); }

// A non-blocking stream with a small pool of timing-free events, one
// recorded after each copy so Wait can block on exactly that copy.
class CudaCopyStream final : public CopyStream {
 public:
  CudaCopyStream(int device, cudaStream_t stream) : device_(device), stream_(stream) {}
  ~CudaCopyStream() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    for (auto& [ticket, event] : pending_) cudaEventDestroy(event);
    for (cudaEvent_t event : free_) cudaEventDestroy(event);
    cudaStreamDestroy(stream_);
  }

  absl::StatusOr<uint64_t> CopyToHostAsync(void* dst, const void* src, uint64_t bytes) override {
    WEIGHTD_CUDA_TRY(cudaSetDevice(device_), absl::StrCat("cudaSetDevice(", device_, ")"));
    WEIGHTD_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_),
                     absl::StrCat("cudaMemcpyAsync(", bytes, " bytes) from ", Where(device_)));
    cudaEvent_t event;
    if (!free_.empty()) {
      event = free_.back();
      free_.pop_back();
    } else {
      WEIGHTD_CUDA_TRY(cudaEventCreateWithFlags(&event, cudaEventDisableTiming),
                       "cudaEventCreateWithFlags");
    }
    cudaError_t recorded = cudaEventRecord(event, stream_);
    if (recorded != cudaSuccess) {
      cudaEventDestroy(event);
      return CudaError(recorded, "cudaEventRecord");
    }
    pending_.emplace_back(++next_ticket_, event);
    return next_ticket_;
  }

  absl::Status Wait(uint64_t ticket) override {
    while (!pending_.empty() && pending_.front().first <= ticket) {
      cudaEvent_t event = pending_.front().second;
      pending_.pop_front();
      cudaError_t done = cudaEventSynchronize(event);
      free_.push_back(event);
      if (done != cudaSuccess) {
        return CudaError(done, absl::StrCat("device-to-host copy from ", Where(device_)));
      }
    }
    return absl::OkStatus();
  }

 private:
  const int device_;
  const cudaStream_t stream_;
  std::deque<std::pair<uint64_t, cudaEvent_t>> pending_;
  std::vector<cudaEvent_t> free_;
  uint64_t next_ticket_ = 0;
};

class CudaRuntimeBackend final : public DeviceBackend {
 public:
  std::string name() const override { return "cuda"; }

  absl::StatusOr<int> DeviceCount() override {
    int count = 0;
    // Without a driver (libcuda.so.1 absent) this is where it shows:
    // cudaErrorInsufficientDriver or cudaErrorNoDevice.
    WEIGHTD_CUDA_TRY(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (count == 0) return absl::FailedPreconditionError("cudaGetDeviceCount: no CUDA device");
    return count;
  }

  absl::StatusOr<DeviceInfo> Info(int device) override {
    cudaDeviceProp prop;
    WEIGHTD_CUDA_TRY(cudaGetDeviceProperties(&prop, device),
                     absl::StrCat("cudaGetDeviceProperties(", device, ")"));
    DeviceInfo info;
    info.index = device;
    info.name = prop.name;
    const auto* u = reinterpret_cast<const unsigned char*>(prop.uuid.bytes);
    info.uuid = absl::StrFormat(
        "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%"
        "02x%02x%02x%02x%02x",
        u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
        u[14], u[15]);
    char bus[32] = {0};
    WEIGHTD_CUDA_TRY(cudaDeviceGetPCIBusId(bus, sizeof(bus), device),
                     absl::StrCat("cudaDeviceGetPCIBusId(", device, ")"));
    info.pci_bus_id = bus;
    info.total_bytes = prop.totalGlobalMem;
    return info;
  }

  absl::StatusOr<bool> CanAccessPeer(int device, int peer) override {
    if (device == peer) return true;
    int can = 0;
    WEIGHTD_CUDA_TRY(cudaDeviceCanAccessPeer(&can, device, peer),
                     absl::StrCat("cudaDeviceCanAccessPeer(", device, ", ", peer, ")"));
    return can != 0;
  }

  absl::StatusOr<void*> Allocate(int device, uint64_t bytes) override {
    WEIGHTD_CUDA_TRY(cudaSetDevice(device), absl::StrCat("cudaSetDevice(", device, ")"));
    void* ptr = nullptr;
    WEIGHTD_CUDA_TRY(cudaMalloc(&ptr, bytes),
                     absl::StrCat("cudaMalloc(", bytes, " bytes) on ", Where(device)));
    return ptr;
  }

  void Free(int device, void* ptr) override {
    cudaSetDevice(device);
    cudaFree(ptr);
  }

  absl::Status CopyToDevice(int device, void* dst, const void* src, uint64_t bytes) override {
    WEIGHTD_CUDA_TRY(cudaSetDevice(device), absl::StrCat("cudaSetDevice(", device, ")"));
    WEIGHTD_CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice),
                     absl::StrCat("cudaMemcpy(", bytes, " bytes) to ", Where(device)));
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<CopyStream>> CreateStream(int device) override {
    WEIGHTD_CUDA_TRY(cudaSetDevice(device), absl::StrCat("cudaSetDevice(", device, ")"));
    cudaStream_t stream;
    // Non-blocking: no implicit sync with the legacy default stream.
    WEIGHTD_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                     absl::StrCat("cudaStreamCreateWithFlags on ", Where(device)));
    return std::unique_ptr<CopyStream>(new CudaCopyStream(device, stream));
  }

  absl::StatusOr<void*> AllocatePinned(uint64_t bytes) override {
    void* ptr = nullptr;
    WEIGHTD_CUDA_TRY(cudaHostAlloc(&ptr, bytes, cudaHostAllocPortable),
                     absl::StrCat("cudaHostAlloc(", bytes, " bytes)"));
    return ptr;
  }

  void FreePinned(void* ptr) override { cudaFreeHost(ptr); }

  absl::StatusOr<IpcMemHandle> IpcHandle(int device, void* base) override {
    WEIGHTD_CUDA_TRY(cudaSetDevice(device), absl::StrCat("cudaSetDevice(", device, ")"));
    cudaIpcMemHandle_t handle;
    WEIGHTD_CUDA_TRY(cudaIpcGetMemHandle(&handle, base),
                     absl::StrCat("cudaIpcGetMemHandle on ", Where(device)));
    IpcMemHandle out;
    std::memcpy(out.data(), &handle, out.size());
    return out;
  }
};

}  // namespace

std::shared_ptr<DeviceBackend> CudaBackend() {
  static const auto* backend = new std::shared_ptr<DeviceBackend>(new CudaRuntimeBackend());
  return *backend;
}

bool BuiltWithCuda() { return true; }

}  // namespace weightd
