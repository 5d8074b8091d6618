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

// OK when WriteCheckpoint can write `path`'s format: ".safetensors", or
// ".pt"/".pth"/".bin" (torch.save zip format). Else InvalidArgument naming
// `path` and every extension accepted.
absl::Status CheckOutputFormat(const std::string& path);

// Writes `tensors` to `path` in the format CheckOutputFormat accepts.
// Atomic: `path` is replaced only on success.
absl::Status WriteCheckpoint(const std::string& path, const StateDict& tensors,
                             const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_CHECKPOINT_IO_H_
