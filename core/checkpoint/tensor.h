// Description of one tensor inside a loaded checkpoint: dtype, shape and
// strides over a byte range of a shared, refcounted buffer. No LibTorch here;
// LibTorch tensors are made from these spans without copying elsewhere.
#ifndef WEIGHTD_CORE_CHECKPOINT_TENSOR_H_
#define WEIGHTD_CORE_CHECKPOINT_TENSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/checkpoint/buffer.h"
#include "core/checkpoint/dtype.h"

namespace weightd {

// A typed storage: a byte range of a Buffer. Several tensors may share one
// storage (views, tied weights), as in PyTorch.
struct Storage {
  DType dtype = DType::kFloat32;
  std::shared_ptr<const Buffer> buffer;  // keeps `data` alive
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  std::string key;  // record name in the file, for error messages
};

// One tensor. Copyable (copies share the storage). Thread-safe to read.
struct TensorRecord {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements, like Tensor.stride()
  int64_t storage_offset = 0;    // in elements
  std::shared_ptr<const Storage> storage;
  bool requires_grad = false;
  bool is_parameter = false;  // saved as torch.nn.Parameter

  int64_t numel() const;
  uint64_t nbytes() const { return static_cast<uint64_t>(numel()) * DTypeSize(dtype); }
  bool is_contiguous() const;
  // First element (storage data + storage_offset). Only valid after Validate.
  const uint8_t* data() const;

  // Row-major bytes of the tensor: a view into the storage when the tensor is
  // contiguous, else a copy written into `*scratch`.
  absl::Span<const uint8_t> ContiguousBytes(std::vector<uint8_t>* scratch) const;

  // xxHash64 (seed 0) of the row-major bytes, as Python's
  // xxhash.xxh64(t.contiguous().view(-1).view(torch.uint8).numpy()).
  uint64_t Checksum() const;
};

// A tensor's name, dtype and shape without its bytes: what a writer needs to
// lay out a file before the bytes arrive (CheckpointStreamWriter).
struct TensorDescriptor {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
};

// Row-major strides for `shape`.
std::vector<int64_t> ContiguousStrides(absl::Span<const int64_t> shape);

// Checks that shape, strides and offset are sane and that every element lies
// inside the storage. Overflow-safe: a shape whose product overflows int64 is
// an error, not a wrap-around. `name` goes into the message.
absl::Status ValidateTensor(const TensorRecord& tensor, absl::string_view name);

// Number of elements for `shape`, or an error on negative dims or overflow.
absl::StatusOr<int64_t> CheckedNumel(absl::Span<const int64_t> shape);

std::string ShapeToString(absl::Span<const int64_t> shape);

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_TENSOR_H_
