// Interoperability with the safetensors library itself (python3-safetensors:
// safetensors.torch.save_file / safe_open), for the torch 2.x dtypes: we read
// its files exactly, and it reads ours. tests/data/safetensors_library_cases.py
// writes and checks; without torch >= 2.3 and safetensors it records why and
// these tests skip (the torch 2.6 lane runs them).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/format/safetensors/safetensors.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/core/format/safetensors/test_util.h"

namespace weightd {
namespace {

using safetensors_test::MakeTempDir;
using safetensors_test::Python;
using safetensors_test::RunCommand;

std::string Script() {
  return std::string(WEIGHTD_SOURCE_DIR) + "/tests/data/safetensors_library_cases.py";
}

class SafetensorsLibraryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("library"));
    std::string output;
    ASSERT_EQ(RunCommand(Python() + " " + Script() + " write " + *dir_, &output), 0) << output;
    expected_ = new nlohmann::json(safetensors_test::ReadJson(*dir_ + "/library.json"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete expected_;
  }
  void SetUp() override {
    if (expected_->contains("unsupported")) {
      GTEST_SKIP() << (*expected_)["unsupported"].get<std::string>()
                   << "; the torch 2.6 lane runs this test";
    }
  }

  // Every tensor of both library files, by name.
  static std::map<std::string, TensorRecord> ReadBoth(
      std::vector<std::pair<std::string, std::string>>* metadata) {
    std::map<std::string, TensorRecord> out;
    for (const char* file : {"library.safetensors", "library_uint.safetensors"}) {
      absl::StatusOr<Checkpoint> c = ReadSafetensors(*dir_ + "/" + file);
      EXPECT_TRUE(c.ok()) << c.status();
      if (!c.ok()) continue;
      for (const auto& [k, v] : c->root->entries()) out[k->str()] = v->tensor();
      if (std::string(file) == "library.safetensors") *metadata = c->file_metadata;
    }
    return out;
  }

  static std::string* dir_;
  static nlohmann::json* expected_;
};

std::string* SafetensorsLibraryTest::dir_ = nullptr;
nlohmann::json* SafetensorsLibraryTest::expected_ = nullptr;

TEST_F(SafetensorsLibraryTest, ReadsWhatTheLibraryWroteExactly) {
  std::vector<std::pair<std::string, std::string>> metadata;
  std::map<std::string, TensorRecord> got = ReadBoth(&metadata);
  ASSERT_EQ(got.size(), (*expected_)["tensors"].size());
  for (const auto& want : (*expected_)["tensors"]) {
    const std::string name = want["name"];
    SCOPED_TRACE(name);
    ASSERT_EQ(got.count(name), 1u);
    const TensorRecord& t = got[name];
    EXPECT_EQ(DTypeName(t.dtype), want["dtype"].get<std::string>());
    EXPECT_EQ(t.shape, want["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(std::to_string(t.Checksum()), want["xxh64"].get<std::string>());
  }
  std::map<std::string, std::string> want_metadata =
      (*expected_)["metadata"].get<std::map<std::string, std::string>>();
  const std::map<std::string, std::string> got_metadata(metadata.begin(), metadata.end());
  EXPECT_EQ(got_metadata, want_metadata);
}

TEST_F(SafetensorsLibraryTest, TheLibraryReadsWhatWeWrite) {
  std::vector<std::pair<std::string, std::string>> metadata;
  std::map<std::string, TensorRecord> got = ReadBoth(&metadata);
  StateDict tensors(got.begin(), got.end());
  const std::string path = *dir_ + "/ours.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors, metadata).ok());
  std::string output;
  EXPECT_EQ(RunCommand(Python() + " " + Script() + " check " + path, &output), 0) << output;
}

}  // namespace
}  // namespace weightd
