// libFuzzer target: arbitrary bytes as a legacy (torch < 1.6) torch.save
// file, read by the legacy reader directly. torch_file_fuzzer reaches it too,
// but spends part of its time in the zip reader (it dispatches on "PK"); this
// one mutates only the legacy pickle chain (magic, protocol, sys_info, object,
// key list) and the raw storages after it. Seeds: make_seeds.py, written by
// torch.save(..., _use_new_zipfile_serialization=False).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/checkpoint/buffer.h"
#include "core/checkpoint/value.h"
#include "core/format/torch/torch_file_internal.h"
#include "tests/fuzz/walk_tensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<const weightd::Buffer> file =
      weightd::Buffer::Own(std::vector<uint8_t>(data, data + size));
  weightd::torch_internal::DeferredErrors deferred;
  absl::StatusOr<weightd::ValuePtr> root =
      weightd::torch_internal::ReadLegacy(file, "fuzz.pt", &deferred);
  if (!root.ok()) return 0;
  // As ReadTorchBuffer does: no tensor is used before ValidateTree passes.
  if (!weightd::torch_internal::ValidateTree(**root, "fuzz.pt", deferred).ok()) return 0;
  weightd::fuzz::ChecksumEveryTensor(**root);
  return 0;
}
