#include "core/checkpoint/dtype.h"

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
    EXPECT_EQ(DTypeFromStorageType(StorageTypeName(dtype)), dtype);
  }
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
  EXPECT_FALSE(DTypeFromSafetensors("F8_E4M3").has_value());
}

TEST(DTypeTest, SizesMatchPyTorch) {
  EXPECT_EQ(DTypeSize(DType::kBool), 1u);
  EXPECT_EQ(DTypeSize(DType::kBFloat16), 2u);
  EXPECT_EQ(DTypeSize(DType::kComplex128), 16u);
}

}  // namespace
}  // namespace weightd
