// CheckpointStreamWriter's contract: the format is checked first, tensors
// come in order with exactly their bytes, and nothing is left behind unless
// Commit succeeds. (That the files equal WriteCheckpoint's, and load in
// PyTorch, is checked end to end by tests/client/weightctl_pull_test.py.)
#include "core/format/stream_writer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/format/checkpoint_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weightd {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/stream_writer_test_" + std::to_string(::getpid()) + "_" + name;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

absl::Span<const uint8_t> Bytes(const std::vector<float>& v) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float));
}

TEST(StreamWriterTest, RefusesAnUnknownExtensionListingTheKnownOnes) {
  auto writer = CheckpointStreamWriter::Create(TempPath("out.txt"));
  ASSERT_FALSE(writer.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(writer.status()));
  for (const char* ext : {".safetensors", ".pt", ".pth", ".bin"}) {
    EXPECT_THAT(writer.status().message(), HasSubstr(ext));
  }
}

TEST(StreamWriterTest, WritesTensorsInOrderAndReadsBack) {
  for (const char* ext : {".safetensors", ".pt"}) {
    const std::string path = TempPath(std::string("ok") + ext);
    auto writer = CheckpointStreamWriter::Create(path);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Start({{"a", DType::kFloat32, {2}}, {"b", DType::kFloat32, {3}}}).ok());
    const std::vector<float> a = {1, 2}, b = {3, 4, 5};
    ASSERT_TRUE((*writer)->BeginTensor(0).ok());
    ASSERT_TRUE((*writer)->Write(Bytes(a)).ok());
    ASSERT_TRUE((*writer)->EndTensor().ok());
    EXPECT_FALSE(Exists(path)) << "visible before Commit";
    ASSERT_TRUE((*writer)->BeginTensor(1).ok());
    ASSERT_TRUE((*writer)->Write(Bytes(b).subspan(0, 4)).ok());
    ASSERT_TRUE((*writer)->Write(Bytes(b).subspan(4)).ok());
    ASSERT_TRUE((*writer)->EndTensor().ok());
    ASSERT_TRUE((*writer)->Commit().ok());
    absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
    ASSERT_TRUE(read.ok()) << read.status();
  }
}

TEST(StreamWriterTest, RefusesOutOfOrderAndShortTensors) {
  auto writer = CheckpointStreamWriter::Create(TempPath("bad.pt"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Start({{"a", DType::kFloat32, {2}}, {"b", DType::kFloat32, {1}}}).ok());
  EXPECT_FALSE((*writer)->BeginTensor(1).ok());
  ASSERT_TRUE((*writer)->BeginTensor(0).ok());
  const std::vector<float> one = {1}, three = {1, 2, 3};
  EXPECT_FALSE((*writer)->Write(Bytes(three)).ok());
  ASSERT_TRUE((*writer)->Write(Bytes(one)).ok());
  EXPECT_FALSE((*writer)->EndTensor().ok());
  EXPECT_FALSE((*writer)->Commit().ok());
}

TEST(StreamWriterTest, RefusesDuplicateNames) {
  auto writer = CheckpointStreamWriter::Create(TempPath("dup.safetensors"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_FALSE((*writer)->Start({{"a", DType::kFloat32, {1}}, {"a", DType::kFloat16, {1}}}).ok());
}

TEST(StreamWriterTest, AnUncommittedWriterLeavesNoFile) {
  const std::string path = TempPath("gone.safetensors");
  std::string temp;
  {
    auto writer = CheckpointStreamWriter::Create(path);
    ASSERT_TRUE(writer.ok()) << writer.status();
    temp = (*writer)->temp_path();
    EXPECT_TRUE(Exists(temp));
    ASSERT_TRUE((*writer)->Start({{"a", DType::kFloat32, {1}}}).ok());
  }
  EXPECT_FALSE(Exists(temp));
  EXPECT_FALSE(Exists(path));
}

}  // namespace
}  // namespace weightd
