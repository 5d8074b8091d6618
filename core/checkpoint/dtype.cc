#include "core/checkpoint/dtype.h"

#include <array>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace weightd {
namespace {

struct DTypeInfo {
  DType dtype;
  size_t size;
  absl::string_view name;
  absl::string_view storage_type;
  absl::string_view safetensors;
};

// Indexed by the enum value.
constexpr std::array<DTypeInfo, kNumDTypes> kInfo = {{
    {DType::kBool, 1, "bool", "BoolStorage", "BOOL"},
    {DType::kUInt8, 1, "uint8", "ByteStorage", "U8"},
    {DType::kInt8, 1, "int8", "CharStorage", "I8"},
    {DType::kInt16, 2, "int16", "ShortStorage", "I16"},
    {DType::kInt32, 4, "int32", "IntStorage", "I32"},
    {DType::kInt64, 8, "int64", "LongStorage", "I64"},
    {DType::kFloat16, 2, "float16", "HalfStorage", "F16"},
    {DType::kBFloat16, 2, "bfloat16", "BFloat16Storage", "BF16"},
    {DType::kFloat32, 4, "float32", "FloatStorage", "F32"},
    {DType::kFloat64, 8, "float64", "DoubleStorage", "F64"},
    {DType::kComplex64, 8, "complex64", "ComplexFloatStorage", "C64"},
    {DType::kComplex128, 16, "complex128", "ComplexDoubleStorage", "C128"},
    {DType::kFloat8_e4m3fn, 1, "float8_e4m3fn", "", "F8_E4M3"},
    {DType::kFloat8_e5m2, 1, "float8_e5m2", "", "F8_E5M2"},
    {DType::kFloat8_e4m3fnuz, 1, "float8_e4m3fnuz", "", "F8_E4M3FNUZ"},
    {DType::kFloat8_e5m2fnuz, 1, "float8_e5m2fnuz", "", "F8_E5M2FNUZ"},
    {DType::kUInt16, 2, "uint16", "", "U16"},
    {DType::kUInt32, 4, "uint32", "", "U32"},
    {DType::kUInt64, 8, "uint64", "", "U64"},
}};

constexpr bool InfoIsIndexedByEnum() {
  for (size_t i = 0; i < kInfo.size(); ++i) {
    if (static_cast<size_t>(kInfo[i].dtype) != i) return false;
  }
  return true;
}
static_assert(InfoIsIndexedByEnum(), "kInfo must list the dtypes in enum order");

const DTypeInfo& Info(DType dtype) { return kInfo[static_cast<size_t>(dtype)]; }

struct Alias {
  absl::string_view alias;
  DType dtype;
};
constexpr std::array<Alias, 8> kAliases = {{
    {"float", DType::kFloat32},
    {"half", DType::kFloat16},
    {"double", DType::kFloat64},
    {"long", DType::kInt64},
    {"int", DType::kInt32},
    {"short", DType::kInt16},
    {"cfloat", DType::kComplex64},
    {"cdouble", DType::kComplex128},
}};

}  // namespace

size_t DTypeSize(DType dtype) { return Info(dtype).size; }
absl::string_view DTypeName(DType dtype) { return Info(dtype).name; }
absl::string_view StorageTypeName(DType dtype) { return Info(dtype).storage_type; }
absl::string_view SafetensorsCode(DType dtype) { return Info(dtype).safetensors; }

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  absl::string_view bare = name;
  if (absl::StartsWith(bare, "torch.")) bare.remove_prefix(6);
  for (const DTypeInfo& info : kInfo) {
    if (info.name == bare) return info.dtype;
  }
  for (const Alias& alias : kAliases) {
    if (alias.alias == bare) return alias.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown dtype \"", name,
      "\" (expected a PyTorch dtype name such as float32, bfloat16, int64, bool)"));
}

bool HasLegacyStorageType(DType dtype) { return !Info(dtype).storage_type.empty(); }

std::optional<DType> DTypeFromStorageType(absl::string_view storage_type) {
  if (storage_type.empty()) return std::nullopt;
  for (const DTypeInfo& info : kInfo) {
    if (info.storage_type == storage_type) return info.dtype;
  }
  return std::nullopt;
}

std::optional<DType> DTypeFromSafetensors(absl::string_view code) {
  for (const DTypeInfo& info : kInfo) {
    if (info.safetensors == code) return info.dtype;
  }
  return std::nullopt;
}

bool IsFloat8(DType dtype) {
  return dtype == DType::kFloat8_e4m3fn || dtype == DType::kFloat8_e5m2 ||
         dtype == DType::kFloat8_e4m3fnuz || dtype == DType::kFloat8_e5m2fnuz;
}

bool IsFloatingPoint(DType dtype) {
  return dtype == DType::kFloat16 || dtype == DType::kBFloat16 ||
         dtype == DType::kFloat32 || dtype == DType::kFloat64 || IsFloat8(dtype);
}

bool IsComplex(DType dtype) {
  return dtype == DType::kComplex64 || dtype == DType::kComplex128;
}

}  // namespace weightd
