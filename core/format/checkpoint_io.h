// Reading any supported checkpoint file, and writing a state dict in the
// format its file name asks for.
#ifndef WEIGHTD_CORE_FORMAT_CHECKPOINT_IO_H_
#define WEIGHTD_CORE_FORMAT_CHECKPOINT_IO_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/checkpoint/checkpoint.h"

namespace weightd {

// Reads `path`: "*.safetensors.index.json" as a sharded safetensors set,
// else by content: a zip (torch.save >= 1.6), a safetensors header, or the
// legacy torch.save pickle stream. Tensors are views into an mmap of the file.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path);

// Writes `tensors` to `path`: ".safetensors" or ".pt"/".pth"/".bin"
// (torch.save zip format). Atomic: `path` is replaced only on success.
absl::Status WriteCheckpoint(const std::string& path, const StateDict& tensors,
                             const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_CHECKPOINT_IO_H_
