// libFuzzer target: read arbitrary bytes as a torch.save file (zip or
// legacy), which runs the zip reader, the restricted unpickler and tensor
// validation. Any input must give a status, never a crash or hang.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/checkpoint/buffer.h"
#include "core/format/torch/torch_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto checkpoint = weightd::ReadTorchBuffer(
      weightd::Buffer::Own(std::vector<uint8_t>(data, data + size)), "fuzz.pt");
  if (!checkpoint.ok()) return 0;
  // Validated tensors must be readable end to end.
  std::vector<const weightd::Value*> stack = {checkpoint->root.get()};
  while (!stack.empty()) {
    const weightd::Value* v = stack.back();
    stack.pop_back();
    // Stride-0 tensors may describe far more bytes than the input holds.
    if (v->is(weightd::Value::Kind::kTensor) && v->tensor().nbytes() <= (16u << 20)) {
      (void)v->tensor().Checksum();
    }
    for (const auto& item : v->items()) stack.push_back(item.get());
    for (const auto& [key, value] : v->entries()) stack.push_back(value.get());
  }
  return 0;
}
