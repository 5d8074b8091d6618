// libFuzzer target: arbitrary bytes as a whole-model pickle
// (torch.save(model); PickleMode::kWholeModel), then the module-tree walk:
// state dict selection, module listing and metadata. Any input must give a
// status, never a crash, unbounded recursion or a hang; nothing it names is
// ever called.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/checkpoint/buffer.h"
#include "core/checkpoint/module_tree.h"
#include "core/checkpoint/select.h"
#include "core/checkpoint/tensor.h"
#include "core/checkpoint/value.h"
#include "core/format/pickle/unpickler.h"

namespace {

// Small owned storages, so oversized tensors must be caught by
// ValidateTensor rather than read out of bounds.
absl::StatusOr<std::shared_ptr<const weightd::Storage>> LoadSmallStorage(
    const weightd::StorageRequest& request) {
  auto storage = std::make_shared<weightd::Storage>();
  storage->dtype = request.dtype;
  storage->key = request.key;
  size_t numel = static_cast<size_t>(std::min<int64_t>(request.numel, 256));
  storage->buffer =
      weightd::Buffer::Own(std::vector<uint8_t>(numel * weightd::DTypeSize(request.dtype), 0x5a));
  storage->data = storage->buffer->data();
  storage->nbytes = storage->buffer->size();
  return std::shared_ptr<const weightd::Storage>(std::move(storage));
}

void TouchTensors(const weightd::StateDict& tensors) {
  for (const auto& [name, t] : tensors) {
    if (weightd::ValidateTensor(t, name).ok() && t.nbytes() <= (16u << 20)) (void)t.Checksum();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  weightd::UnpicklerLimits limits;
  limits.max_stack = 1 << 16;
  limits.max_memo = 1 << 16;
  // Every byte string in whole-model mode, and half of them (by the first
  // byte) in the automatic mode readers use.
  weightd::PickleMode mode =
      size > 0 && (data[0] & 1) ? weightd::PickleMode::kAuto : weightd::PickleMode::kWholeModel;
  size_t consumed = 0;
  absl::StatusOr<weightd::ValuePtr> value = weightd::Unpickle(
      absl::Span<const uint8_t>(data, size), "fuzz.pkl", LoadSmallStorage, limits, &consumed, mode);
  if (!value.ok()) return 0;
  if (consumed > size) __builtin_trap();
  weightd::Checkpoint checkpoint;
  checkpoint.path = "fuzz.pt";
  checkpoint.root = *value;
  absl::StatusOr<weightd::Selection> selection = weightd::SelectStateDict(checkpoint, "");
  if (selection.ok()) TouchTensors(selection->tensors);
  for (const weightd::ModuleInfo& module : weightd::ListModules(**value, 64)) {
    absl::StatusOr<weightd::Selection> sub = weightd::SelectStateDict(checkpoint, module.path);
    if (sub.ok()) TouchTensors(sub->tensors);
  }
  (void)weightd::Metadata(checkpoint, "").dump();
  return 0;
}
