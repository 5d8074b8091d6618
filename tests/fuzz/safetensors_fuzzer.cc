// libFuzzer target: arbitrary bytes as a safetensors file. The reader must
// return a status, never crash, hang or allocate in proportion to a length
// field it has not checked against the input size.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/checkpoint/buffer.h"
#include "core/checkpoint/value.h"
#include "core/format/safetensors/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<const weightd::Buffer> file =
      weightd::Buffer::Own(std::string(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<weightd::Checkpoint> checkpoint =
      weightd::ReadSafetensorsBuffer(file, "fuzz.safetensors");
  if (checkpoint.ok()) {
    // Touch every accepted tensor's bytes so ASan checks they lie in the input.
    for (const auto& [key, value] : checkpoint->root->entries()) {
      (void)value->tensor().Checksum();
    }
  }
  return 0;
}
