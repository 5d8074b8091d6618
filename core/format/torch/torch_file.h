// Reading and writing the files torch.save writes: the zip format (default
// since torch 1.6) and the legacy pickle-stream format (torch < 1.6, or
// `_use_new_zipfile_serialization=False`). Pickles go through our restricted
// unpickler; nothing in a file is ever executed.
#ifndef WEIGHTD_CORE_FORMAT_TORCH_TORCH_FILE_H_
#define WEIGHTD_CORE_FORMAT_TORCH_TORCH_FILE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/buffer.h"
#include "core/checkpoint/checkpoint.h"

namespace weightd {

// Maps `path` and reads it as ReadTorchBuffer does. Tensors are zero-copy
// views into the mapping: only the zip directory, data.pkl and the record
// headers are touched, never the tensor bytes.
absl::StatusOr<Checkpoint> ReadTorchFile(const std::string& path);

// Reads a torch.save file held in `file`; `name` (usually the path) names it
// in errors and becomes Checkpoint::path. Every tensor in the tree is
// validated against its storage. Errors: DataLoss for corrupt files (naming
// the file and, where there is one, the tensor), FailedPrecondition for
// disallowed content (a global outside the allowlist, big-endian data,
// TorchScript archives, the ancient tar format).
absl::StatusOr<Checkpoint> ReadTorchBuffer(std::shared_ptr<const Buffer> file, std::string name);

// Writes `tensors` as torch.save(state_dict) does (zip format, pickle
// protocol 2, an OrderedDict of _rebuild_tensor_v2): tensors sharing a
// Storage share a record and keep their offsets and strides, so Python's
// torch.load(path, weights_only=True) gives back equal tensors and views.
// Atomic: `path` is replaced only on success.
absl::Status WriteTorchZip(const std::string& path, const StateDict& tensors);

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_TORCH_TORCH_FILE_H_
