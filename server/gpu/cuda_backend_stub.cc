// CudaBackend() of a weightd built without CUDA (WEIGHTD_CUDA=OFF, or AUTO
// and no toolkit): every model that asks for cuda:N is served from host
// memory with this reason.
#include "server/gpu/device_backend.h"

namespace weightd {
namespace {

absl::Status NoCuda() {
  return absl::FailedPreconditionError("this weightd was built without CUDA (WEIGHTD_CUDA=OFF)");
}

class NoCudaBackend final : public DeviceBackend {
 public:
  std::string name() const override { return "none"; }
  absl::StatusOr<int> DeviceCount() override { return NoCuda(); }
  absl::StatusOr<DeviceInfo> Info(int) override { return NoCuda(); }
  absl::StatusOr<bool> CanAccessPeer(int, int) override { return NoCuda(); }
  absl::StatusOr<void*> Allocate(int, uint64_t) override { return NoCuda(); }
  void Free(int, void*) override {}
  absl::Status CopyToDevice(int, void*, const void*, uint64_t) override { return NoCuda(); }
  absl::StatusOr<std::unique_ptr<CopyStream>> CreateStream(int) override { return NoCuda(); }
  absl::StatusOr<void*> AllocatePinned(uint64_t) override { return NoCuda(); }
  void FreePinned(void*) override {}
  absl::StatusOr<IpcMemHandle> IpcHandle(int, void*) override { return NoCuda(); }
};

}  // namespace

std::shared_ptr<DeviceBackend> CudaBackend() {
  static const auto* backend = new std::shared_ptr<DeviceBackend>(new NoCudaBackend());
  return *backend;
}

bool BuiltWithCuda() { return false; }

}  // namespace weightd
