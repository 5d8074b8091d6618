// dtype mapping between weightd and LibTorch, and a module's target entries.
// Uses only APIs present in LibTorch 1.13 and 2.x.
#include <string>

#include "absl/strings/str_cat.h"
#include "client/client.h"

namespace weightd {

c10::ScalarType ToScalarType(DType dtype) {
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
  }
  return torch::kFloat32;
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
