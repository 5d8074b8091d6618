#include "server/cache/gpu_export.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace weightd {

absl::StatusOr<GpuIpcExport> ExportForIpc(const GpuTier& tier,
                                          std::shared_ptr<const GpuResidency> residency,
                                          absl::Span<const int> indices,
                                          absl::string_view client_device_uuid, Role caller) {
  // A handle maps the server's memory into the caller's address space:
  // read access to the weights, and nothing less may have it.
  if (caller < Role::kRead) {
    return absl::PermissionDeniedError("CUDA IPC handles need the read role");
  }
  const int device = residency->device();
  int client_device = -1;
  for (int d = 0; d < tier.device_count(); ++d) {
    absl::StatusOr<DeviceInfo> info = tier.Info(d);
    if (info.ok() && info->uuid == client_device_uuid) client_device = d;
  }
  if (client_device < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the client's device ", client_device_uuid,
                     " is not visible to weightd (CUDA_VISIBLE_DEVICES?); use "
                     "the host path"));
  }
  if (client_device != device) {
    absl::StatusOr<bool> peer = tier.backend().CanAccessPeer(client_device, device);
    if (!peer.ok()) return absl::FailedPreconditionError(peer.status().message());
    if (!*peer) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the client's device cuda:", client_device, " (weightd's ordinal) has no peer access to ",
          residency->tier(), " where the model is resident; use the host path"));
    }
  }
  const size_t count = residency->view()->tensors().size();
  GpuIpcExport out;
  for (int index : indices) {
    if (index < 0 || static_cast<size_t>(index) >= count) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor index ", index, " out of range (", count, " tensors)"));
    }
    out.tensors.push_back(residency->placement(index));
  }
  absl::StatusOr<IpcMemHandle> handle = tier.backend().IpcHandle(device, residency->base());
  if (!handle.ok()) return handle.status();
  absl::StatusOr<DeviceInfo> info = tier.Info(device);
  if (!info.ok()) return info.status();
  out.handle = *handle;
  out.allocation_bytes = residency->bytes();
  out.server_device = device;
  out.device_uuid = info->uuid;
  out.pci_bus_id = info->pci_bus_id;
  out.lease = std::move(residency);
  return out;
}

}  // namespace weightd
