// libFuzzer target: arbitrary bytes as a torch.save pickle. The unpickler
// must return a status, never crash, recurse without bound, hang, or allocate
// in proportion to a length field it has not checked against the input.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/checkpoint/buffer.h"
#include "core/checkpoint/tensor.h"
#include "core/checkpoint/value.h"
#include "core/format/pickle/unpickler.h"

namespace {

// Small owned storages: at most 256 elements, so oversized tensors must be
// caught by ValidateTensor rather than read out of bounds.
absl::StatusOr<std::shared_ptr<const weightd::Storage>> LoadSmallStorage(
    const weightd::StorageRequest& request) {
  auto storage = std::make_shared<weightd::Storage>();
  storage->dtype = request.dtype;
  storage->key = request.key;
  size_t numel = static_cast<size_t>(std::min<int64_t>(request.numel, 256));
  storage->buffer = weightd::Buffer::Own(
      std::vector<uint8_t>(numel * weightd::DTypeSize(request.dtype), 0x5a));
  storage->data = storage->buffer->data();
  storage->nbytes = storage->buffer->size();
  return std::shared_ptr<const weightd::Storage>(std::move(storage));
}

// Depth is bounded by UnpicklerLimits::max_depth, so recursion is fine here.
void Touch(const weightd::Value& v) {
  if (v.is(weightd::Value::Kind::kTensor)) {
    if (weightd::ValidateTensor(v.tensor(), "fuzz").ok()) (void)v.tensor().Checksum();
    return;
  }
  for (const weightd::ValuePtr& item : v.items()) Touch(*item);
  for (const auto& [key, value] : v.entries()) {
    Touch(*key);
    Touch(*value);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  weightd::UnpicklerLimits limits;
  limits.max_stack = 1 << 16;
  limits.max_memo = 1 << 16;
  size_t consumed = 0;
  absl::StatusOr<weightd::ValuePtr> value =
      weightd::Unpickle(absl::Span<const uint8_t>(data, size), "fuzz.pkl", LoadSmallStorage,
                        limits, &consumed);
  if (value.ok()) {
    if (consumed > size) __builtin_trap();
    Touch(**value);
  }
  return 0;
}
