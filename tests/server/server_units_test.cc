// Unit tests of the server's non-gRPC parts: names, model.pbtxt, dtype casts,
// chunk framing.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache/dtype_cast.h"
#include "server/repository/repository.h"

namespace weightd {
namespace {

using ::testing::HasSubstr;

TEST(ValidateModelName, AcceptsOrdinaryNames) {
  EXPECT_TRUE(ValidateModelName("resnet50").ok());
  EXPECT_TRUE(ValidateModelName("bert-base_v1.2").ok());
}

TEST(ValidateModelName, RejectsPathEscapesAndHiddenNames) {
  for (const char* name : {"", "..", ".hidden", "a/b", "../etc", "-x", "a b"}) {
    EXPECT_EQ(ValidateModelName(name).code(), absl::StatusCode::kInvalidArgument) << name;
  }
}

TEST(ParseModelConfig, NamesTheFileAndLineOfAnError) {
  std::string path = ::testing::TempDir() + "/bad_model.pbtxt";
  std::ofstream(path) << "select: \"ema\"\nno_such_field: 3\n";
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("bad_model.pbtxt"));
  EXPECT_THAT(config.status().message(), HasSubstr("line 2"));
}

TEST(ScanRepository, FindsVersionsNewestFirstAndBareFiles) {
  namespace fs = std::filesystem;
  std::string root = ::testing::TempDir() + "/scan_repo";
  fs::remove_all(root);
  fs::create_directories(root + "/m/1");
  fs::create_directories(root + "/m/10");
  fs::create_directories(root + "/m/01");  // not a canonical version number
  std::ofstream(root + "/m/1/a.pt") << "x";
  std::ofstream(root + "/m/10/b.safetensors") << "x";
  std::ofstream(root + "/bare.pth") << "x";
  std::ofstream(root + "/notes.txt") << "x";
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(root, nullptr);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 2);
  EXPECT_EQ((*models)[0].name, "bare");
  EXPECT_EQ((*models)[0].versions[0].relative_path, "bare.pth");
  EXPECT_EQ((*models)[1].name, "m");
  ASSERT_EQ((*models)[1].versions.size(), 2);
  EXPECT_EQ((*models)[1].versions[0].version, 10);
  EXPECT_EQ((*models)[1].versions[1].relative_path, "m/1/a.pt");
}

TEST(ScanRepository, RecordsAVersionWithTwoCheckpointsAsAnError) {
  namespace fs = std::filesystem;
  std::string root = ::testing::TempDir() + "/scan_two";
  fs::remove_all(root);
  fs::create_directories(root + "/m/1");
  std::ofstream(root + "/m/1/a.pt") << "x";
  std::ofstream(root + "/m/1/b.pt") << "x";
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(root, nullptr);
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->size(), 1);
  EXPECT_THAT((*models)[0].versions[0].error.message(), HasSubstr("more than one checkpoint"));
}

// The plain layout too: a version's checkpoint linking out of the root is
// refused, and served with follow_external_symlinks.
TEST(ScanRepository, RefusesACheckpointLinkingOutUnlessAllowed) {
  namespace fs = std::filesystem;
  const std::string base = ::testing::TempDir() + "/scan_link";
  fs::remove_all(base);
  fs::create_directories(base + "/repo/m/1");
  std::ofstream(base + "/elsewhere.pt") << "x";
  fs::create_symlink("../../../elsewhere.pt", base + "/repo/m/1/model.pt");
  RepositoryOptions options;
  options.root = base + "/repo";
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(options, nullptr, nullptr);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 1);
  ASSERT_EQ((*models)[0].versions.size(), 1);
  EXPECT_EQ((*models)[0].versions[0].error.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT((*models)[0].versions[0].error.message(),
              HasSubstr("m/1/model.pt: resolves outside the repository"));

  options.follow_external_symlinks = true;
  models = ScanRepository(options, nullptr, nullptr);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ((*models)[0].versions.size(), 1);
  EXPECT_TRUE((*models)[0].versions[0].error.ok()) << (*models)[0].versions[0].error;
  EXPECT_EQ((*models)[0].versions[0].file_size, 1);
}

TEST(ScanRepository, PrefersADirectoryOverAHubCacheEntryOverABareFile) {
  namespace fs = std::filesystem;
  const std::string root = ::testing::TempDir() + "/scan_same_name";
  fs::remove_all(root);
  fs::create_directories(root + "/org--m/1");
  std::ofstream(root + "/org--m/1/a.pt") << "x";
  const std::string hub_snapshot = root + "/models--org--m/snapshots/abc";
  fs::create_directories(hub_snapshot);
  fs::create_directories(root + "/models--org--m/refs");
  std::ofstream(root + "/models--org--m/refs/main") << "abc";
  std::ofstream(hub_snapshot + "/model.safetensors") << "x";
  std::ofstream(root + "/org--m.pt") << "x";
  std::ofstream(root + "/org--n.pt") << "x";
  fs::create_directories(root + "/models--org--n/snapshots/abc");
  fs::create_directories(root + "/models--org--n/refs");
  std::ofstream(root + "/models--org--n/refs/main") << "abc";
  std::ofstream(root + "/models--org--n/snapshots/abc/pytorch_model.bin") << "x";
  std::vector<std::string> warnings;
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(root, &warnings);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 2);
  EXPECT_EQ((*models)[0].source, "org--m");
  EXPECT_EQ((*models)[0].versions[0].relative_path, "org--m/1/a.pt");
  EXPECT_EQ((*models)[1].source, "models--org--n");
  EXPECT_EQ((*models)[1].versions[0].relative_path,
            "models--org--n/snapshots/abc/pytorch_model.bin");
  EXPECT_THAT(warnings, ::testing::Contains(
                            "org--n: both models--org--n and org--n.pt serve this model; using "
                            "models--org--n"));
}

TEST(HalfConversion, RoundsToNearestEven) {
  // 1 + 2^-11 lies halfway between two halves: ties go to the even one (1.0).
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);  // rounds up to infinity
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
}

TEST(BFloat16Conversion, RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBFloat16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // tie -> even
  EXPECT_EQ(FloatToBFloat16(std::nanf("")), 0x7FC0);
  EXPECT_EQ(BFloat16ToFloat(0x3FC0), 1.5f);
}

TEST(CastBytes, RejectsAFloatOutOfRangeForAnInteger) {
  float values[] = {1.5f, 300.0f};
  std::vector<uint8_t> out;
  absl::Status status =
      CastBytes({reinterpret_cast<const uint8_t*>(values), sizeof(values)}, DType::kFloat32,
                DType::kUInt8, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(CastBytes, RefusesComplexCasts) {
  EXPECT_EQ(CheckCast(DType::kComplex64, DType::kFloat32).code(),
            absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace weightd
