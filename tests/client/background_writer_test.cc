// weightctl pull's writer thread (client/weightctl/background_writer.h):
// the file it writes is byte for byte what the writer alone writes, for
// chunks smaller and larger than its buffers, and the writer's first error
// comes back to the receiving thread and stops the writing.
#include "client/weightctl/background_writer.h"

#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weightd::cli {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/background_writer_test_" + std::to_string(::getpid()) + "_" +
         name;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::vector<TensorDescriptor> kTensors = {
    {"big", DType::kFloat32, {7, 131072}},  // 3.5 MiB: several buffers
    {"small", DType::kFloat32, {3}},
    {"empty", DType::kFloat32, {0}},
    {"odd", DType::kUInt8, {1048577}}};  // one byte past a buffer

std::vector<std::string> Contents() {
  std::mt19937 rng(3);
  std::vector<std::string> out;
  for (const TensorDescriptor& t : kTensors) {
    int64_t n = DTypeSize(t.dtype);
    for (int64_t d : t.shape) n *= d;
    std::string bytes(static_cast<size_t>(n), '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    out.push_back(std::move(bytes));
  }
  return out;
}

TEST(BackgroundWriterTest, WritesTheBytesTheWriterAloneWrites) {
  const std::vector<std::string> data = Contents();
  for (const char* ext : {".pt", ".safetensors"}) {
    const std::string direct_path = TempPath(std::string("direct") + ext);
    const std::string threaded_path = TempPath(std::string("threaded") + ext);
    {
      auto writer = CheckpointStreamWriter::Create(direct_path);
      ASSERT_TRUE(writer.ok()) << writer.status();
      ASSERT_TRUE((*writer)->Start(kTensors).ok());
      for (size_t i = 0; i < data.size(); ++i) {
        ASSERT_TRUE((*writer)->BeginTensor(i).ok());
        ASSERT_TRUE((*writer)
                        ->Write(absl::MakeConstSpan(
                            reinterpret_cast<const uint8_t*>(data[i].data()), data[i].size()))
                        .ok());
        ASSERT_TRUE((*writer)->EndTensor().ok());
      }
      ASSERT_TRUE((*writer)->Commit().ok());
    }
    {
      auto writer = CheckpointStreamWriter::Create(threaded_path);
      ASSERT_TRUE(writer.ok()) << writer.status();
      ASSERT_TRUE((*writer)->Start(kTensors).ok());
      BackgroundWriter background(writer->get());
      // Chunks of 300 KiB and 1.7 MiB in turn: under and over a buffer.
      for (size_t i = 0; i < data.size(); ++i) {
        ASSERT_TRUE(background.BeginTensor(i).ok());
        absl::string_view rest = data[i];
        for (size_t k = 0; !rest.empty(); ++k) {
          const size_t n = std::min(rest.size(), k % 2 == 0 ? size_t{300} << 10 : size_t{1782579});
          ASSERT_TRUE(background.Write(rest.substr(0, n)).ok());
          rest.remove_prefix(n);
        }
        ASSERT_TRUE(background.EndTensor().ok());
      }
      ASSERT_TRUE(background.Finish().ok());
      ASSERT_TRUE((*writer)->Commit().ok());
    }
    const std::string a = Slurp(direct_path), b = Slurp(threaded_path);
    EXPECT_GT(a.size(), 4u << 20) << ext;
    EXPECT_TRUE(a == b) << ext << ": the files differ";
    ::unlink(direct_path.c_str());
    ::unlink(threaded_path.c_str());
  }
}

TEST(BackgroundWriterTest, TheWritersFirstErrorComesBackAndStopsTheWriting) {
  const std::string path = TempPath("bad.pt");
  auto writer = CheckpointStreamWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Start({{"a", DType::kFloat32, {2}}, {"b", DType::kFloat32, {1}}}).ok());
  BackgroundWriter background(writer->get());
  ASSERT_TRUE(background.BeginTensor(0).ok());
  // 12 bytes into an 8-byte tensor: the writer refuses them on its thread.
  const std::string twelve(12, 'x');
  (void)background.Write(twelve);
  (void)background.EndTensor();
  const absl::Status finished = background.Finish();
  EXPECT_TRUE(absl::IsFailedPrecondition(finished)) << finished;
  EXPECT_THAT(std::string(finished.message()), HasSubstr("past its end"));
  // Every later call says the same, and nothing more reaches the writer.
  EXPECT_EQ(background.BeginTensor(1), finished);
  EXPECT_EQ(background.Write("abcd"), finished);
  EXPECT_EQ(background.Finish(), finished);
  EXPECT_FALSE((*writer)->Commit().ok());
}

}  // namespace
}  // namespace weightd::cli
