// CUDA IPC export of GPU-resident tensors, for the same-node path (DESIGN.md
// section 9). No gRPC: the LocalFetch RPC (another branch) calls
// ExportForIpc for a client whose module lives on a CUDA device, sends the
// handle and offsets over the Unix socket, and keeps the export's lease
// until the client's side-channel connection closes.
//
// How it plugs in (for the lead merging LocalFetch): the handler, with the
// caller's role and the UUID of the device its module is on (the client
// reads it from cudaGetDeviceProperties, since ordinals differ between
// processes with different CUDA_VISIBLE_DEVICES):
//   1. snapshot = store->Acquire(...); plan = PlanFetch(...) as Fetch does;
//   2. residency = store->Residency(snapshot) (null: host path, as today);
//   3. out = ExportForIpc(store->gpu_tier(), residency, <planned indices
//      without a cast>, uuid, role); FailedPrecondition: host path for all;
//      PermissionDenied: the RPC's error;
//   4. send out.handle, out.tensors[i] (offset, bytes) with each header, and
//      keep out.lease in the side-channel connection's state, dropping it
//      when the connection closes.
// The client opens the handle once per allocation on its device (cached:
// CUDA refcounts repeated opens in one context), builds tensors at base +
// offset (torch::from_blob with a deleter), copies into the module, and
// closes the handle before it hangs up.
//
// Why a lease: cudaFree of an exported allocation before every importer has
// called cudaIpcCloseMemHandle is undefined behaviour (CUDA runtime docs),
// so the allocation must outlive the client's mapping, which the server only
// learns of when the client hangs up.
#ifndef WEIGHTD_SERVER_CACHE_GPU_EXPORT_H_
#define WEIGHTD_SERVER_CACHE_GPU_EXPORT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/auth/token_store.h"
#include "server/cache/gpu_tier.h"

namespace weightd {

struct GpuIpcExport {
  // cudaIpcMemHandle_t of the residency's one allocation; the importer calls
  // cudaIpcOpenMemHandle(&base, handle, cudaIpcMemLazyEnablePeerAccess) on
  // its device, then tensor i is at base + tensors[i].offset.
  IpcMemHandle handle{};
  uint64_t allocation_bytes = 0;
  // The device holding it: weightd's ordinal (meaningless to a process with
  // another CUDA_VISIBLE_DEVICES), and the names every process agrees on.
  int server_device = 0;
  std::string device_uuid;
  std::string pci_bus_id;
  // For each requested index, in request order: offset and bytes within the
  // allocation (row-major, the stored dtype).
  std::vector<GpuResidency::Placement> tensors;
  // Keeps the allocation resident (never evicted, never freed) while held.
  std::shared_ptr<const void> lease;
};

// Exports `residency`'s tensors `indices` (into residency->view()->tensors())
// for a client whose module is on the device with UUID `client_device_uuid`
// ("GPU-..."; see DeviceInfo). `caller` is the caller's role; with auth off
// the RPC layer passes Role::kAdmin.
// PermissionDenied: below Role::kRead. FailedPrecondition, when the client
// must take the host path instead: its device is not visible to weightd, or
// has no peer access to the residency's device. InvalidArgument: an index
// out of range.
absl::StatusOr<GpuIpcExport> ExportForIpc(const GpuTier& tier,
                                          std::shared_ptr<const GpuResidency> residency,
                                          absl::Span<const int> indices,
                                          absl::string_view client_device_uuid, Role caller);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_CACHE_GPU_EXPORT_H_
