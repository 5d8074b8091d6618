#include "core/checkpoint/tensor.h"

#include <xxhash.h>

#include <cstring>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace weightd {
namespace {

// Copies the strided tensor into `out` in row-major order.
void CopyStrided(const uint8_t* base, size_t item, absl::Span<const int64_t> shape,
                 absl::Span<const int64_t> strides, size_t dim, uint8_t*& out) {
  if (dim == shape.size()) {
    std::memcpy(out, base, item);
    out += item;
    return;
  }
  if (dim + 1 == shape.size() && strides[dim] == 1) {
    size_t n = static_cast<size_t>(shape[dim]) * item;
    std::memcpy(out, base, n);
    out += n;
    return;
  }
  for (int64_t i = 0; i < shape[dim]; ++i) {
    CopyStrided(base + static_cast<size_t>(i * strides[dim]) * item, item, shape, strides,
                dim + 1, out);
  }
}

}  // namespace

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::vector<int64_t> ContiguousStrides(absl::Span<const int64_t> shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i] > 0 ? shape[i] : 1;
  }
  return strides;
}

absl::StatusOr<int64_t> CheckedNumel(absl::Span<const int64_t> shape) {
  int64_t numel = 1;
  for (int64_t dim : shape) {
    if (dim < 0) {
      return absl::DataLossError(absl::StrCat("negative dimension in shape ", ShapeToString(shape)));
    }
    if (__builtin_mul_overflow(numel, dim, &numel)) {
      return absl::DataLossError(
          absl::StrCat("shape ", ShapeToString(shape), " has more elements than int64 can count"));
    }
  }
  return numel;
}

int64_t TensorRecord::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

bool TensorRecord::is_contiguous() const {
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

const uint8_t* TensorRecord::data() const {
  if (storage == nullptr || storage->data == nullptr) return nullptr;
  return storage->data + static_cast<size_t>(storage_offset) * DTypeSize(dtype);
}

absl::Span<const uint8_t> TensorRecord::ContiguousBytes(std::vector<uint8_t>* scratch) const {
  uint64_t n = nbytes();
  if (n == 0) return {};
  if (is_contiguous()) return {data(), static_cast<size_t>(n)};
  scratch->resize(n);
  uint8_t* out = scratch->data();
  CopyStrided(data(), DTypeSize(dtype), shape, strides, 0, out);
  return {scratch->data(), scratch->size()};
}

uint64_t TensorRecord::Checksum() const {
  std::vector<uint8_t> scratch;
  absl::Span<const uint8_t> bytes = ContiguousBytes(&scratch);
  return XXH64(bytes.data(), bytes.size(), 0);
}

absl::Status ValidateTensor(const TensorRecord& tensor, absl::string_view name) {
  auto fail = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("tensor \"", name, "\": ", why));
  };
  if (tensor.storage == nullptr) return fail("has no storage");
  if (tensor.shape.size() != tensor.strides.size()) {
    return fail(absl::StrCat("shape ", ShapeToString(tensor.shape), " and stride ",
                             ShapeToString(tensor.strides), " differ in length"));
  }
  if (tensor.shape.size() > 64) return fail("has more than 64 dimensions");
  if (tensor.storage->dtype != tensor.dtype) {
    return fail(absl::StrCat("dtype ", DTypeName(tensor.dtype), " differs from its storage's ",
                             DTypeName(tensor.storage->dtype)));
  }
  absl::StatusOr<int64_t> numel = CheckedNumel(tensor.shape);
  if (!numel.ok()) return fail(numel.status().message());
  if (tensor.storage_offset < 0) return fail("negative storage offset");
  const int64_t item = static_cast<int64_t>(DTypeSize(tensor.dtype));
  if (*numel == 0) return absl::OkStatus();
  // Largest element index reached, overflow-checked.
  int64_t last = tensor.storage_offset;
  for (size_t i = 0; i < tensor.shape.size(); ++i) {
    if (tensor.strides[i] < 0) return fail("negative stride");
    int64_t reach;
    if (__builtin_mul_overflow(tensor.shape[i] - 1, tensor.strides[i], &reach) ||
        __builtin_add_overflow(last, reach, &last)) {
      return fail("shape x stride overflows int64");
    }
  }
  int64_t needed;
  if (__builtin_add_overflow(last, 1, &needed) || __builtin_mul_overflow(needed, item, &needed)) {
    return fail("shape x stride overflows int64");
  }
  if (static_cast<uint64_t>(needed) > tensor.storage->nbytes) {
    return fail(absl::StrCat("storage \"", tensor.storage->key, "\" holds ",
                             tensor.storage->nbytes, " bytes but shape ",
                             ShapeToString(tensor.shape), " with stride ",
                             ShapeToString(tensor.strides), " and offset ",
                             tensor.storage_offset, " needs ", needed));
  }
  return absl::OkStatus();
}

}  // namespace weightd
