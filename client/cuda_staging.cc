// The CUDA side of the staging ring (see cuda_staging.h). Compiled with the
// ring only where CMake found LibTorch's CUDA (WEIGHTD_CLIENT_CUDA) and its
// headers are at hand; elsewhere (Debian's CPU LibTorch 1.13, trixie's CPU
// 2.6) Built() is false and Create() says why.
#include "client/cuda_staging.h"

#include <torch/cuda.h>

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

#if defined(WEIGHTD_CLIENT_CUDA) && __has_include(<c10/cuda/CUDAStream.h>) && \
    __has_include(<ATen/cuda/CUDAEvent.h>) && __has_include(<cuda_runtime_api.h>)
#define WEIGHTD_CUDA_RING 1
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#else
#define WEIGHTD_CUDA_RING 0
#endif

namespace weightd::client_internal {

absl::StatusOr<c10::DeviceIndex> CudaStager::Resolve(const torch::Device& device,
                                                     absl::string_view what) {
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", device.str(),
                     ": no CUDA device is available (torch::cuda::is_available() is false)"));
  }
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  if (device.has_index() && device.index() >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", device.str(), ": this machine has ", count, " CUDA device(s)"));
  }
  if (device.has_index()) return device.index();
#if WEIGHTD_CUDA_RING
  return c10::cuda::current_device();
#else
  return 0;
#endif
}

#if WEIGHTD_CUDA_RING

struct CudaStager::Impl {
  Impl(c10::DeviceIndex device, StagingRingShape shape)
      : device(device),
        stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device)),
        ring(shape) {}

  // Queues the copy of the current slot's bytes, if any, and guards the
  // slot with an event.
  void Flush() {
    const StagingRing::Flush flush = ring.TakeFlush();
    if (flush.bytes == 0) return;
    TORCH_CHECK(flush.tensor_offset + flush.bytes <= nbytes, "staging ring: ", flush.bytes,
                " bytes at offset ", flush.tensor_offset, " overrun a tensor of ", nbytes);
    C10_CUDA_CHECK(cudaMemcpyAsync(dst + flush.tensor_offset, Slot(flush.slot), flush.bytes,
                                   cudaMemcpyHostToDevice, stream.stream()));
    events[flush.slot].record(stream);
  }

  char* Slot(size_t slot) {
    return static_cast<char*>(pinned.data_ptr()) + slot * ring.shape().slot_bytes;
  }

  const c10::DeviceIndex device;
  const c10::cuda::CUDAStream stream;
  StagingRing ring;
  torch::Tensor pinned;                     // the slots, one after another
  std::vector<at::cuda::CUDAEvent> events;  // per slot: recorded after its last copy
  char* dst = nullptr;
  uint64_t nbytes = 0;
  uint64_t waits = 0;
};

bool CudaStager::Built() { return true; }

absl::StatusOr<std::unique_ptr<CudaStager>> CudaStager::Create(c10::DeviceIndex device,
                                                               StagingRingShape shape) {
  try {
    c10::cuda::CUDAGuard guard(device);
    auto impl = std::make_unique<Impl>(device, shape);
    impl->pinned = torch::empty({static_cast<int64_t>(shape.slots * shape.slot_bytes)},
                                torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
    impl->events.resize(shape.slots);
    // The caller's work so far on this device (e.g. module.to(cuda) with
    // non_blocking copies) comes before our writes into its tensors.
    at::cuda::CUDAEvent ready;
    ready.record(c10::cuda::getCurrentCUDAStream(device));
    ready.block(impl->stream);
    return std::unique_ptr<CudaStager>(new CudaStager(std::move(impl)));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("CUDA staging ring on cuda:", device, " (", shape.slots,
                                            " x ", shape.slot_bytes, " pinned bytes): ", e.what()));
  }
}

CudaStager::~CudaStager() {
  try {
    impl_->stream.synchronize();
  } catch (...) {
    // Finish() reported it, or the load is failing already.
  }
}

void CudaStager::BeginTensor(void* dst, uint64_t nbytes) {
  impl_->ring.BeginTensor();
  impl_->dst = static_cast<char*>(dst);
  impl_->nbytes = nbytes;
}

void CudaStager::Write(absl::string_view data) {
  Impl& s = *impl_;
  c10::cuda::CUDAGuard guard(s.device);
  while (!data.empty()) {
    StagingRing::Room room = s.ring.NextRoom();
    if (room.in_flight) {
      if (!s.events[room.slot].query()) {
        ++s.waits;
        s.events[room.slot].synchronize();
      }
      s.ring.Retire(room.slot);
      room = s.ring.NextRoom();
    }
    const size_t n = std::min(room.bytes, data.size());
    std::memcpy(s.Slot(room.slot) + room.offset, data.data(), n);
    s.ring.Fill(n);
    data.remove_prefix(n);
    if (s.ring.full()) s.Flush();
  }
}

void CudaStager::EndTensor() {
  c10::cuda::CUDAGuard guard(impl_->device);
  impl_->Flush();
}

void CudaStager::OnStream(const std::function<void()>& fn) {
  c10::cuda::CUDAStreamGuard guard(impl_->stream);
  fn();
}

absl::Status CudaStager::Finish() {
  try {
    impl_->stream.synchronize();
    for (size_t slot : impl_->ring.InFlight()) impl_->ring.Retire(slot);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("CUDA on cuda:", impl_->device, ": ", e.what()));
  }
}

c10::DeviceIndex CudaStager::device() const { return impl_->device; }
uint64_t CudaStager::waits() const { return impl_->waits; }
uint64_t CudaStager::flushes() const { return impl_->ring.flushes(); }

#else  // !WEIGHTD_CUDA_RING

struct CudaStager::Impl {
  c10::DeviceIndex device = 0;
};

bool CudaStager::Built() { return false; }

absl::StatusOr<std::unique_ptr<CudaStager>> CudaStager::Create(c10::DeviceIndex device,
                                                               StagingRingShape) {
  return absl::FailedPreconditionError(
      absl::StrCat("cuda:", device,
                   ": this weightd client was built without its CUDA staging ring "
                   "(LibTorch without CUDA, or no CUDA headers)"));
}

CudaStager::~CudaStager() = default;
void CudaStager::BeginTensor(void*, uint64_t) {}
void CudaStager::Write(absl::string_view) {}
void CudaStager::EndTensor() {}
void CudaStager::OnStream(const std::function<void()>& fn) { fn(); }
absl::Status CudaStager::Finish() { return absl::OkStatus(); }
c10::DeviceIndex CudaStager::device() const { return impl_->device; }
uint64_t CudaStager::waits() const { return 0; }
uint64_t CudaStager::flushes() const { return 0; }

#endif  // WEIGHTD_CUDA_RING

CudaStager::CudaStager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

}  // namespace weightd::client_internal
