// Host bytes into CUDA memory through a ring of pinned buffers (private to
// the client library; used by Load into CUDA parameters and Fetch onto
// cuda:N). The header needs no CUDA: where the client library was built
// without it (LibTorch without CUDA, or no CUDA headers), Built() is false
// and callers take their host-staging fallback.
//
// How the bytes travel: each arriving chunk is memcpy'd into the next free
// slot of a StagingRing (client/staging_ring.h) of pinned host memory; a full
// slot (or a tensor's last bytes) is copied to the device with
// cudaMemcpyAsync on a stream of this stager's own, taken from LibTorch's
// pool, and a CUDA event recorded after that copy guards the slot: the
// receiving thread waits only when it comes back to a slot whose copy is
// still running. Receiving the next chunk thus overlaps the copies.
//
// Ordering with the caller: the stream first waits for the work queued so
// far on the device's current stream (a module just moved there with
// non_blocking copies), and Finish() waits for the stream on the host, so a
// caller's stream sees the bytes in place once Finish() returned.
//
// Not thread-safe: one receiving thread drives a stager.
#ifndef WEIGHTD_CLIENT_CUDA_STAGING_H_
#define WEIGHTD_CLIENT_CUDA_STAGING_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/staging_ring.h"

namespace weightd::client_internal {

class CudaStager {
 public:
  // Whether this client library was built with the ring.
  static bool Built();

  // The CUDA device `device` names ("cuda" alone: the current device).
  // FailedPrecondition when no CUDA device is available; InvalidArgument
  // for an index past the last device. `what` prefixes the message.
  static absl::StatusOr<c10::DeviceIndex> Resolve(const torch::Device& device,
                                                  absl::string_view what);

  // A stager for CUDA device `device`: pins shape.slots x shape.slot_bytes
  // (from LibTorch's caching host allocator, so later loads reuse the pages).
  static absl::StatusOr<std::unique_ptr<CudaStager>> Create(c10::DeviceIndex device,
                                                            StagingRingShape shape);

  // Waits for the copies still in flight (a failed load's too) before the
  // pinned slots go back to the allocator.
  ~CudaStager();

  // The next tensor's bytes go to the `nbytes` of device memory at `dst`.
  void BeginTensor(void* dst, uint64_t nbytes);
  // The tensor's next bytes, in order (at most the `nbytes` announced).
  // Throws c10::Error on a CUDA error.
  void Write(absl::string_view data);
  // Queues the copy of the tensor's last bytes.
  void EndTensor();
  // Runs `fn` with this stager's stream current on its device, so that its
  // device work (allocating scratch, converting dtypes) queues behind the
  // copies and the caching allocator ties those allocations to the stream.
  void OnStream(const std::function<void()>& fn);
  // Waits on the host for all work queued on the stream. InternalError
  // naming the device when CUDA reports a failure.
  absl::Status Finish();

  c10::DeviceIndex device() const;
  // Times Write waited for a slot whose copy was still running.
  uint64_t waits() const;
  uint64_t flushes() const;

 private:
  struct Impl;
  explicit CudaStager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weightd::client_internal

#endif  // WEIGHTD_CLIENT_CUDA_STAGING_H_
