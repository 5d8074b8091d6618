// safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of UTF-8 JSON naming each tensor's
// dtype, shape and [begin, end) byte range, then the tensor bytes.
//
// Readers validate the file as the reference implementation does (header at
// most 100,000,000 bytes, ranges that tile the data exactly with no holes or
// overlaps, sizes that match shape x dtype) and, stricter than it, reject
// duplicate names and unknown keys in an entry. All errors are DataLoss and
// name the file; nothing is allocated in proportion to a length before that
// length is checked against the file size.
#ifndef WEIGHTD_CORE_FORMAT_SAFETENSORS_SAFETENSORS_H_
#define WEIGHTD_CORE_FORMAT_SAFETENSORS_SAFETENSORS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/buffer.h"
#include "core/checkpoint/checkpoint.h"

namespace weightd {

// The reference implementation's limit on the JSON header.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Parses a whole safetensors file held in `file`. The tensors point into
// `file` without copying (one Storage per tensor, keyed by the tensor name,
// covering exactly its bytes) and keep it alive. The root is a dict of
// name -> tensor in header order; "__metadata__" goes to file_metadata.
// `path` is only used in messages and Checkpoint::path.
absl::StatusOr<Checkpoint> ReadSafetensorsBuffer(std::shared_ptr<const Buffer> file,
                                                 const std::string& path);

// Maps `path` (zero-copy) and parses it; format kFormatSafetensors.
absl::StatusOr<Checkpoint> ReadSafetensors(const std::string& path);

// Reads a `*.safetensors.index.json` as written by transformers:
// {"metadata": {...}, "weight_map": {"name": "model-00001-of-00002.safetensors"}}.
// Shards are plain file names in the index's directory (a '/' or ".." is
// rejected as a path escape); each is mapped once. Every weight_map entry must
// be in its shard and every shard tensor in the weight_map, under that shard.
// Tensors come in weight_map order; format kFormatSafetensorsSharded.
// file_metadata: the index's "metadata" (non-string values as JSON text), then
// the shards' __metadata__ pairs not already present.
absl::StatusOr<Checkpoint> ReadShardedSafetensors(const std::string& index_path);

// Writes `tensors` as a safetensors file through AtomicFile (readers never see
// a partial file). The header lists "__metadata__" first (when `metadata` is
// not empty), then the tensors in `tensors` order, padded with spaces to a
// multiple of 8 bytes as the reference writer does. Tensor bytes are laid out
// contiguously, largest element size first (stable), so that with the 8-byte
// aligned header every tensor is aligned to its element size in an mmap; a
// non-contiguous tensor is written in row-major order. Duplicate or invalid
// UTF-8 names, or a name "__metadata__", are InvalidArgument.
absl::Status WriteSafetensors(
    const std::string& path, const StateDict& tensors,
    const std::vector<std::pair<std::string, std::string>>& metadata = {});

// Where WriteSafetensors puts what: the file's first bytes (length and
// header) and each tensor's data offset from the start of the file, for
// writers that receive the bytes later (CheckpointStreamWriter).
struct SafetensorsLayout {
  std::string head;
  std::vector<uint64_t> offsets;  // in `tensors` order
  uint64_t file_size = 0;
};
// InvalidArgument (naming `path`) as WriteSafetensors, and for a shape with a
// negative dimension.
absl::StatusOr<SafetensorsLayout> PlanSafetensors(
    const std::string& path, absl::Span<const TensorDescriptor> tensors,
    const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_SAFETENSORS_SAFETENSORS_H_
