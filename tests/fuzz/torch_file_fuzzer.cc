// libFuzzer target: read arbitrary bytes as a torch.save file (zip or
// legacy), which runs the zip reader, the restricted unpickler and tensor
// validation. Any input must give a status, never a crash or hang.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/checkpoint/buffer.h"
#include "core/format/torch/torch_file.h"
#include "tests/fuzz/walk_tensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto checkpoint = weightd::ReadTorchBuffer(
      weightd::Buffer::Own(std::vector<uint8_t>(data, data + size)), "fuzz.pt");
  if (!checkpoint.ok()) return 0;
  // Validated tensors must be readable end to end.
  weightd::fuzz::ChecksumEveryTensor(*checkpoint->root);
  return 0;
}
