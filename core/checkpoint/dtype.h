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
  // torch >= 2.1 (float8) and >= 2.3 (uint16/32/64): torch.save writes them
  // with _rebuild_tensor_v3 over an UntypedStorage, having no legacy
  // <Type>Storage class. Appended so that older values keep their numbers.
  kFloat8_e4m3fn,
  kFloat8_e5m2,
  kFloat8_e4m3fnuz,
  kFloat8_e5m2fnuz,
  kUInt16,
  kUInt32,
  kUInt64,
};

inline constexpr int kNumDTypes = 19;

// Size of one element in bytes.
size_t DTypeSize(DType dtype);

// PyTorch's canonical name: "float32", "int64", "bool", "complex64"...
absl::string_view DTypeName(DType dtype);

// Parses a PyTorch dtype name; also accepts the aliases PyTorch accepts
// ("float", "half", "double", "long", "int", "short", "cfloat", "cdouble")
// and a leading "torch.".
absl::StatusOr<DType> ParseDType(absl::string_view name);

// The legacy storage class torch.save names in its pickles ("FloatStorage").
// Empty for the dtypes that have none (HasLegacyStorageType is false): torch
// pickles those as torch.UntypedStorage plus the dtype object.
std::optional<DType> DTypeFromStorageType(absl::string_view storage_type);
absl::string_view StorageTypeName(DType dtype);
bool HasLegacyStorageType(DType dtype);

// The safetensors dtype code ("F32", "BF16", "F8_E4M3", "U16"...), as the
// reference implementation (safetensors/src/tensor.rs, enum Dtype) spells it.
std::optional<DType> DTypeFromSafetensors(absl::string_view code);
absl::string_view SafetensorsCode(DType dtype);

// float16/bfloat16/float32/float64 and the four float8 types.
bool IsFloatingPoint(DType dtype);
bool IsFloat8(DType dtype);
bool IsComplex(DType dtype);

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_DTYPE_H_
