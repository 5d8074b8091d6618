// Writes a state dict to a file while its tensors arrive (weightctl pull
// streams a Fetch into one): first every tensor's name, dtype and shape, then
// each tensor's bytes, in order. No tensor is held in memory.
//
//   auto writer = CheckpointStreamWriter::Create("out.safetensors");
//   (*writer)->Start(descriptors);
//   for each tensor i: BeginTensor(i), Write(bytes)..., EndTensor()
//   (*writer)->Commit();
//
// The files are those WriteCheckpoint writes for the same tensors:
// safetensors in its layout (largest elements first, each tensor's bytes
// written at its offset), torch.save zip with one stored record per tensor
// whose CRC-32 is computed as the bytes pass. Not thread-safe.
#ifndef WEIGHTD_CORE_FORMAT_STREAM_WRITER_H_
#define WEIGHTD_CORE_FORMAT_STREAM_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/checkpoint/tensor.h"

namespace weightd {

class CheckpointStreamWriter {
 public:
  // Checks the format (CheckOutputFormat) and creates the temporary file
  // next to `path`, so a bad name or an unwritable directory fails before
  // anything is downloaded. Destroying the writer before Commit removes it.
  static absl::StatusOr<std::unique_ptr<CheckpointStreamWriter>> Create(const std::string& path);
  virtual ~CheckpointStreamWriter() = default;

  // The temporary file's name (for a signal handler that must remove it).
  virtual const std::string& temp_path() const = 0;

  // Once, before any tensor: what will arrive, in arrival order.
  // InvalidArgument for duplicate names or what the format cannot hold.
  virtual absl::Status Start(std::vector<TensorDescriptor> tensors) = 0;
  // Tensor `index` of Start's list begins; indexes come in order.
  virtual absl::Status BeginTensor(size_t index) = 0;
  // The current tensor's next bytes (row-major).
  virtual absl::Status Write(absl::Span<const uint8_t> bytes) = 0;
  // All of the current tensor's bytes were written.
  virtual absl::Status EndTensor() = 0;
  // Every tensor was written: finish the file and rename it onto `path`.
  virtual absl::Status Commit() = 0;
};

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_STREAM_WRITER_H_
