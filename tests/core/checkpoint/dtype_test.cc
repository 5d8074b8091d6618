#include "core/checkpoint/dtype.h"

#include <string>

#include "gtest/gtest.h"

namespace weightd {
namespace {

TEST(DTypeTest, EveryDTypeRoundTripsThroughItsNames) {
  for (int i = 0; i < kNumDTypes; ++i) {
    DType dtype = static_cast<DType>(i);
    absl::StatusOr<DType> parsed = ParseDType(DTypeName(dtype));
    ASSERT_TRUE(parsed.ok()) << DTypeName(dtype);
    EXPECT_EQ(*parsed, dtype);
    EXPECT_EQ(DTypeFromSafetensors(SafetensorsCode(dtype)), dtype);
    if (HasLegacyStorageType(dtype)) {
      EXPECT_EQ(DTypeFromStorageType(StorageTypeName(dtype)), dtype);
    }
  }
}

TEST(DTypeTest, NamesTheTorch2DTypesAsTorchAndSafetensorsDo) {
  // torch.float8_e4m3fn... and safetensors' Dtype enum (safetensors/src/tensor.rs).
  struct Case {
    DType dtype;
    const char* name;
    const char* safetensors;
    size_t size;
  };
  for (const Case& c : {Case{DType::kFloat8_e4m3fn, "float8_e4m3fn", "F8_E4M3", 1},
                        Case{DType::kFloat8_e5m2, "float8_e5m2", "F8_E5M2", 1},
                        Case{DType::kFloat8_e4m3fnuz, "float8_e4m3fnuz", "F8_E4M3FNUZ", 1},
                        Case{DType::kFloat8_e5m2fnuz, "float8_e5m2fnuz", "F8_E5M2FNUZ", 1},
                        Case{DType::kUInt16, "uint16", "U16", 2},
                        Case{DType::kUInt32, "uint32", "U32", 4},
                        Case{DType::kUInt64, "uint64", "U64", 8}}) {
    EXPECT_EQ(DTypeName(c.dtype), c.name);
    EXPECT_EQ(*ParseDType(std::string("torch.") + c.name), c.dtype);
    EXPECT_EQ(SafetensorsCode(c.dtype), c.safetensors);
    EXPECT_EQ(DTypeSize(c.dtype), c.size);
    // No legacy <Type>Storage class exists for them in torch.
    EXPECT_FALSE(HasLegacyStorageType(c.dtype)) << c.name;
    EXPECT_EQ(IsFloatingPoint(c.dtype), IsFloat8(c.dtype)) << c.name;
  }
  EXPECT_FALSE(DTypeFromStorageType("").has_value());
}

TEST(DTypeTest, AcceptsPyTorchAliases) {
  EXPECT_EQ(*ParseDType("torch.float"), DType::kFloat32);
  EXPECT_EQ(*ParseDType("half"), DType::kFloat16);
  EXPECT_EQ(*ParseDType("long"), DType::kInt64);
  EXPECT_EQ(*ParseDType("cdouble"), DType::kComplex128);
}

TEST(DTypeTest, RejectsUnknownNamesNamingThem) {
  absl::StatusOr<DType> parsed = ParseDType("float8");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("float8"), std::string::npos);
  // Sub-byte and e8m0 codes of newer safetensors have no torch 2.6 dtype.
  EXPECT_FALSE(DTypeFromSafetensors("F4").has_value());
  EXPECT_FALSE(DTypeFromSafetensors("F8_E8M0").has_value());
}

TEST(DTypeTest, SizesMatchPyTorch) {
  EXPECT_EQ(DTypeSize(DType::kBool), 1u);
  EXPECT_EQ(DTypeSize(DType::kBFloat16), 2u);
  EXPECT_EQ(DTypeSize(DType::kComplex128), 16u);
}

}  // namespace
}  // namespace weightd
