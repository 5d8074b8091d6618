// Whole-model files (torch.save(model)) written by real PyTorch and
// torchvision (make_whole_models.py, run by whatever torch WEIGHTD_PYTHON
// has: 1.13 on Debian 12, 2.6 in the trixie lane): ReadTorchFile +
// SelectStateDict must give exactly what Python's model.state_dict() gives,
// in names, order, dtypes, shapes and bytes, for zip and legacy files.
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/checkpoint/select.h"
#include "core/format/torch/torch_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weightd {
namespace {

using ::testing::HasSubstr;

// $WEIGHTD_WHOLE_MODEL_DATA, to check files another torch wrote (for
// instance make_whole_models.py run by hand in the trixie root), else the
// ones this build wrote.
std::string DataDir() {
  const char* env = std::getenv("WEIGHTD_WHOLE_MODEL_DATA");
  return env != nullptr && *env != '\0' ? env : WEIGHTD_WHOLE_MODEL_DATA;
}

const nlohmann::json& Expected() {
  static const nlohmann::json* expected = [] {
    std::ifstream in(DataDir() + "/expected.json");
    return new nlohmann::json(nlohmann::json::parse(in));
  }();
  return *expected;
}

// One row per tensor: "name dtype [shape] xxh64", so a mismatch shows whole.
std::vector<std::string> Rows(const StateDict& tensors) {
  std::vector<std::string> rows;
  for (const auto& [name, t] : tensors) {
    rows.push_back(absl::StrFormat("%s %s %s %016x", name, DTypeName(t.dtype),
                                   ShapeToString(t.shape), t.Checksum()));
  }
  return rows;
}

std::vector<std::string> ExpectedRows(const nlohmann::json& tensors) {
  std::vector<std::string> rows;
  for (const auto& t : tensors) {
    rows.push_back(absl::StrFormat("%s %s %s %s", t[0].get<std::string>(), t[1].get<std::string>(),
                                   ShapeToString(t[2].get<std::vector<int64_t>>()),
                                   t[3].get<std::string>()));
  }
  return rows;
}

class WholeModelTest : public ::testing::TestWithParam<size_t> {
 protected:
  const nlohmann::json& Case() const { return Expected()["cases"][GetParam()]; }
};

TEST_P(WholeModelTest, StateDictEqualsPythonsStateDict) {
  const nlohmann::json& c = Case();
  SCOPED_TRACE(c["file"].get<std::string>() + " (torch " + Expected()["torch"].get<std::string>() +
               ")");
  absl::StatusOr<Checkpoint> checkpoint =
      ReadTorchFile(DataDir() + "/" + c["file"].get<std::string>());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->format, c["format"].get<std::string>());
  absl::StatusOr<Selection> selection =
      SelectStateDict(*checkpoint, c["select"].get<std::string>());
  ASSERT_TRUE(selection.ok()) << selection.status();
  EXPECT_EQ(selection->path, c["selected"].get<std::string>());
  EXPECT_EQ(Rows(selection->tensors), ExpectedRows(c["tensors"]));
  std::vector<std::string> modules, expected_modules;
  for (const ModuleInfo& m : selection->modules) modules.push_back(m.path + " " + m.class_name);
  for (const auto& m : c["modules"]) {
    expected_modules.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  EXPECT_EQ(modules, expected_modules);
}

std::string CaseName(const ::testing::TestParamInfo<size_t>& info) {
  std::string name = Expected()["cases"][info.param]["file"].get<std::string>();
  for (char& ch : name) {
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(PyTorchFiles, WholeModelTest,
                         ::testing::Range<size_t>(0, Expected()["cases"].size()), CaseName);

// The cases above cover these; each must be there, or a generator change
// could silently drop what the issue asks for.
TEST(WholeModelCoverageTest, CoversEveryCaseInBothFormats) {
  std::vector<std::string> files;
  for (const auto& c : Expected()["cases"]) files.push_back(c["file"].get<std::string>());
  for (const char* name :
       {"resnet18", "mobilenet_v2", "vit_tiny", "the_model_class", "data_parallel", "containers",
        "weight_norm", "in_dict", "in_dict_auto", "submodule"}) {
    for (const char* format : {"zip", "legacy"}) {
      EXPECT_THAT(files, ::testing::Contains(absl::StrFormat("%s.%s.pt", name, format)));
    }
  }
}

TEST(WholeModelSelectTest, ListsCandidatesWhenNoStateDictIsFound) {
  absl::StatusOr<Checkpoint> checkpoint = ReadTorchFile(DataDir() + "/in_dict.zip.pt");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  absl::StatusOr<Selection> selection = SelectStateDict(*checkpoint, "epoch");
  ASSERT_FALSE(selection.ok());
  EXPECT_THAT(std::string(selection.status().message()),
              HasSubstr("candidates for --select: model (__main__.Detector)"));
}

TEST(WholeModelSelectTest, NamesTheMissingSubmodule) {
  absl::StatusOr<Checkpoint> checkpoint = ReadTorchFile(DataDir() + "/weight_norm.zip.pt");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  absl::StatusOr<Selection> selection = SelectStateDict(*checkpoint, "neck");
  ASSERT_FALSE(selection.ok());
  EXPECT_THAT(std::string(selection.status().message()),
              HasSubstr("keys there: [backbone, head, refine]"));
}

TEST(WholeModelSelectTest, KeepsNonModuleLeavesAsMetadata) {
  absl::StatusOr<Checkpoint> checkpoint = ReadTorchFile(DataDir() + "/in_dict.zip.pt");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(Metadata(*checkpoint, "model").dump(), R"({"epoch":3,"lr":0.01})");
}

}  // namespace
}  // namespace weightd
