// dtype mapping between weightd and LibTorch, and a module's target entries.
// Builds against LibTorch 1.13 and 2.x: the dtypes torch added later are
// mapped only where <torch/version.h> says this LibTorch has them, and are an
// error naming the dtype and the version needed elsewhere.
#include <torch/version.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "client/client.h"

// float8_e4m3fn/e5m2: 2.1; the fnuz pair: 2.2; uint16/32/64: 2.3.
#define WEIGHTD_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||          \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace weightd {
namespace {

// Unused when this LibTorch has every dtype (2.3 and later).
[[maybe_unused]] absl::Status NeedsNewerLibTorch(DType dtype, absl::string_view version) {
  return absl::FailedPreconditionError(
      absl::StrCat("dtype ", DTypeName(dtype), " needs LibTorch >= ", version,
                   " (this client was built with LibTorch ", TORCH_VERSION_MAJOR, ".",
                   TORCH_VERSION_MINOR, ")"));
}

}  // namespace

absl::StatusOr<c10::ScalarType> ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return torch::kBool;
    case DType::kUInt8:
      return torch::kUInt8;
    case DType::kInt8:
      return torch::kInt8;
    case DType::kInt16:
      return torch::kInt16;
    case DType::kInt32:
      return torch::kInt32;
    case DType::kInt64:
      return torch::kInt64;
    case DType::kFloat16:
      return torch::kFloat16;
    case DType::kBFloat16:
      return torch::kBFloat16;
    case DType::kFloat32:
      return torch::kFloat32;
    case DType::kFloat64:
      return torch::kFloat64;
    case DType::kComplex64:
      return torch::kComplexFloat;
    case DType::kComplex128:
      return torch::kComplexDouble;
    case DType::kFloat8_e4m3fn:
#if WEIGHTD_TORCH_AT_LEAST(2, 1)
      return at::kFloat8_e4m3fn;
#else
      return NeedsNewerLibTorch(dtype, "2.1");
#endif
    case DType::kFloat8_e5m2:
#if WEIGHTD_TORCH_AT_LEAST(2, 1)
      return at::kFloat8_e5m2;
#else
      return NeedsNewerLibTorch(dtype, "2.1");
#endif
    case DType::kFloat8_e4m3fnuz:
#if WEIGHTD_TORCH_AT_LEAST(2, 2)
      return at::kFloat8_e4m3fnuz;
#else
      return NeedsNewerLibTorch(dtype, "2.2");
#endif
    case DType::kFloat8_e5m2fnuz:
#if WEIGHTD_TORCH_AT_LEAST(2, 2)
      return at::kFloat8_e5m2fnuz;
#else
      return NeedsNewerLibTorch(dtype, "2.2");
#endif
    case DType::kUInt16:
#if WEIGHTD_TORCH_AT_LEAST(2, 3)
      return at::kUInt16;
#else
      return NeedsNewerLibTorch(dtype, "2.3");
#endif
    case DType::kUInt32:
#if WEIGHTD_TORCH_AT_LEAST(2, 3)
      return at::kUInt32;
#else
      return NeedsNewerLibTorch(dtype, "2.3");
#endif
    case DType::kUInt64:
#if WEIGHTD_TORCH_AT_LEAST(2, 3)
      return at::kUInt64;
#else
      return NeedsNewerLibTorch(dtype, "2.3");
#endif
  }
  return absl::InternalError(absl::StrCat("unknown dtype ", static_cast<int>(dtype)));
}

absl::StatusOr<c10::ScalarType> ToScalarType(DType dtype, absl::string_view tensor) {
  absl::StatusOr<c10::ScalarType> type = ToScalarType(dtype);
  if (!type.ok()) {
    return absl::Status(type.status().code(),
                        absl::StrCat("tensor '", tensor, "': ", type.status().message()));
  }
  return type;
}

absl::StatusOr<DType> FromScalarType(c10::ScalarType type) {
  switch (type) {
    case torch::kBool:
      return DType::kBool;
    case torch::kUInt8:
      return DType::kUInt8;
    case torch::kInt8:
      return DType::kInt8;
    case torch::kInt16:
      return DType::kInt16;
    case torch::kInt32:
      return DType::kInt32;
    case torch::kInt64:
      return DType::kInt64;
    case torch::kFloat16:
      return DType::kFloat16;
    case torch::kBFloat16:
      return DType::kBFloat16;
    case torch::kFloat32:
      return DType::kFloat32;
    case torch::kFloat64:
      return DType::kFloat64;
    case torch::kComplexFloat:
      return DType::kComplex64;
    case torch::kComplexDouble:
      return DType::kComplex128;
#if WEIGHTD_TORCH_AT_LEAST(2, 1)
    case at::kFloat8_e4m3fn:
      return DType::kFloat8_e4m3fn;
    case at::kFloat8_e5m2:
      return DType::kFloat8_e5m2;
#endif
#if WEIGHTD_TORCH_AT_LEAST(2, 2)
    case at::kFloat8_e4m3fnuz:
      return DType::kFloat8_e4m3fnuz;
    case at::kFloat8_e5m2fnuz:
      return DType::kFloat8_e5m2fnuz;
#endif
#if WEIGHTD_TORCH_AT_LEAST(2, 3)
    case at::kUInt16:
      return DType::kUInt16;
    case at::kUInt32:
      return DType::kUInt32;
    case at::kUInt64:
      return DType::kUInt64;
#endif
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("dtype ", c10::toString(type), " is not supported by weightd"));
  }
}

absl::StatusOr<std::vector<TensorEntry>> ModuleEntries(const torch::nn::Module& module) {
  std::vector<TensorEntry> out;
  auto add = [&out](const std::string& name, const torch::Tensor& t) -> absl::Status {
    if (!t.defined()) return absl::OkStatus();  // an optional parameter left unset
    absl::StatusOr<DType> dtype = FromScalarType(t.scalar_type());
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", dtype.status().message()));
    }
    out.push_back({name, *dtype, t.sizes().vec()});
    return absl::OkStatus();
  };
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    absl::Status s = add(item.key(), item.value());
    if (!s.ok()) return s;
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    absl::Status s = add(item.key(), item.value());
    if (!s.ok()) return s;
  }
  return out;
}

}  // namespace weightd
