// Element types of tensors, named as PyTorch names them ("float32", "bfloat16").
#ifndef WEIGHTD_CORE_CHECKPOINT_DTYPE_H_
#define WEIGHTD_CORE_CHECKPOINT_DTYPE_H_

#include <cstddef>
#include <optional>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace weightd {

enum class DType : unsigned char {
  kBool,
  kUInt8,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFloat16,
  kBFloat16,
  kFloat32,
  kFloat64,
  kComplex64,
  kComplex128,
};

inline constexpr int kNumDTypes = 12;

// Size of one element in bytes.
size_t DTypeSize(DType dtype);

// PyTorch's canonical name: "float32", "int64", "bool", "complex64"...
absl::string_view DTypeName(DType dtype);

// Parses a PyTorch dtype name; also accepts the aliases PyTorch accepts
// ("float", "half", "double", "long", "int", "short", "cfloat", "cdouble")
// and a leading "torch.".
absl::StatusOr<DType> ParseDType(absl::string_view name);

// The legacy storage class torch.save names in its pickles ("FloatStorage").
std::optional<DType> DTypeFromStorageType(absl::string_view storage_type);
absl::string_view StorageTypeName(DType dtype);

// The safetensors dtype code ("F32", "BF16", "BOOL"...).
std::optional<DType> DTypeFromSafetensors(absl::string_view code);
absl::string_view SafetensorsCode(DType dtype);

bool IsFloatingPoint(DType dtype);
bool IsComplex(DType dtype);

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_DTYPE_H_
