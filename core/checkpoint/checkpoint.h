// A loaded checkpoint file: its value tree and where it came from.
#ifndef WEIGHTD_CORE_CHECKPOINT_CHECKPOINT_H_
#define WEIGHTD_CORE_CHECKPOINT_CHECKPOINT_H_

#include <string>
#include <utility>
#include <vector>

#include "core/checkpoint/tensor.h"
#include "core/checkpoint/value.h"

namespace weightd {

// Format names as reported by `weightctl inspect` and the API.
inline constexpr char kFormatTorchZip[] = "torch_zip";
inline constexpr char kFormatTorchLegacy[] = "torch_legacy";
inline constexpr char kFormatSafetensors[] = "safetensors";
inline constexpr char kFormatSafetensorsSharded[] = "safetensors_sharded";

// Thread-safe to read once built; tensors point into buffers the tree holds.
struct Checkpoint {
  std::string path;
  std::string format;
  // What torch.load would return (for safetensors: a dict name -> tensor).
  ValuePtr root;
  // safetensors "__metadata__" (string -> string), in file order.
  std::vector<std::pair<std::string, std::string>> file_metadata;
};

// An ordered state dict: name -> tensor, as module.state_dict() orders it.
using StateDict = std::vector<std::pair<std::string, TensorRecord>>;

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_CHECKPOINT_H_
