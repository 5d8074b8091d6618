// --model_config_dir: <dir>/<model>.pbtxt replaces the repository's
// <model>/model.pbtxt. Scanning (repository.h), the store (failed models,
// Rescan) and a real server whose Match follows the replaced config.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache/model_store.h"
#include "server/repository/repository.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A repository of placeholder checkpoints (scanning never opens them) and
// an empty config directory, both fresh per test.
class ConfigDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    base_ = absl::StrCat(::testing::TempDir(), "/config_dir_", info->name(), "_", getpid());
    fs::remove_all(base_);
    repo_ = base_ + "/repo";
    dir_ = base_ + "/configs";
    fs::create_directories(repo_ + "/m/1");
    std::ofstream(repo_ + "/m/1/model.pt") << "x";
    std::ofstream(repo_ + "/m/model.pbtxt") << "select: \"from_repo\"\npreload: true\n";
    std::ofstream(repo_ + "/bare.pt") << "x";
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(base_); }

  void WriteConfig(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name, std::ios::trunc) << text;
  }

  const ModelEntry& Find(const std::vector<ModelEntry>& models, const std::string& name) {
    for (const ModelEntry& m : models) {
      if (m.name == name) return m;
    }
    ADD_FAILURE() << "no model " << name;
    static const ModelEntry* none = new ModelEntry();
    return *none;
  }

  std::string base_, repo_, dir_;
};

TEST_F(ConfigDirTest, WithoutAFileTheRepositoryConfigApplies) {
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(repo_, nullptr, dir_);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(Find(*models, "m").config.select(), "from_repo");
  EXPECT_EQ(Find(*models, "m").config_path, "m/model.pbtxt");
}

TEST_F(ConfigDirTest, AFileReplacesTheRepositoryConfigAsAWhole) {
  WriteConfig("m.pbtxt", "select: \"ema\"\n");
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(repo_, nullptr, dir_);
  ASSERT_TRUE(models.ok()) << models.status();
  const ModelEntry& m = Find(*models, "m");
  EXPECT_TRUE(m.config_error.ok()) << m.config_error;
  EXPECT_EQ(m.config.select(), "ema");
  EXPECT_FALSE(m.config.preload()) << "fields of the repository's model.pbtxt do not merge in";
  EXPECT_EQ(m.config_path, dir_ + "/m.pbtxt");
}

TEST_F(ConfigDirTest, AFileConfiguresABareFileModel) {
  WriteConfig("bare.pbtxt", "preload: true\n");
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(repo_, nullptr, dir_);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_TRUE(Find(*models, "bare").config.preload());
}

TEST_F(ConfigDirTest, ABadFileIsTheModelsErrorNamingTheFile) {
  WriteConfig("m.pbtxt", "select: \"ema\"\nno_such_field: 1\n");
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(repo_, nullptr, dir_);
  ASSERT_TRUE(models.ok()) << models.status();
  const ModelEntry& m = Find(*models, "m");
  EXPECT_EQ(m.config_error.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(m.config_error.message(), HasSubstr(dir_ + "/m.pbtxt"));
  EXPECT_THAT(m.config_error.message(), HasSubstr("line 2"));
  EXPECT_TRUE(Find(*models, "bare").config_error.ok()) << "other models are unaffected";
}

TEST_F(ConfigDirTest, AGoodFileOverridesABrokenRepositoryConfig) {
  std::ofstream(repo_ + "/m/model.pbtxt", std::ios::trunc) << "not text format {";
  WriteConfig("m.pbtxt", "select: \"ema\"\n");
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(repo_, nullptr, dir_);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_TRUE(Find(*models, "m").config_error.ok()) << Find(*models, "m").config_error;
}

TEST_F(ConfigDirTest, FilesForUnknownModelsAndOtherEntriesAreSkippedWithWarnings) {
  WriteConfig("nope.pbtxt", "select: \"x\"\n");
  WriteConfig("m.txt", "not a config at all");
  WriteConfig(".hidden.pbtxt", "not a config at all");
  absl::StatusOr<std::vector<ModelEntry>> models;
  std::vector<std::string> warnings;
  models = ScanRepository(repo_, &warnings, dir_);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(models->size(), 2u);
  EXPECT_EQ(Find(*models, "m").config.select(), "from_repo");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("nope.pbtxt"));
  EXPECT_THAT(warnings[0], HasSubstr("no model \"nope\""));
}

// A ConfigMap volume: keys are symlinks into "..data", itself a symlink to
// a timestamped directory that is swapped on update.
TEST_F(ConfigDirTest, ReadsAConfigMapVolumeLayout) {
  fs::create_directories(dir_ + "/..2024_01_01_00_00_00.1");
  std::ofstream(dir_ + "/..2024_01_01_00_00_00.1/m.pbtxt") << "select: \"cm\"\n";
  fs::create_directory_symlink("..2024_01_01_00_00_00.1", dir_ + "/..data");
  fs::create_symlink("..data/m.pbtxt", dir_ + "/m.pbtxt");
  std::vector<std::string> warnings;
  absl::StatusOr<std::vector<ModelEntry>> models = ScanRepository(repo_, &warnings, dir_);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(Find(*models, "m").config.select(), "cm");
  EXPECT_TRUE(warnings.empty()) << warnings[0];
}

TEST_F(ConfigDirTest, AMissingDirectoryIsAnError) {
  absl::StatusOr<std::vector<ModelEntry>> models =
      ScanRepository(repo_, nullptr, base_ + "/missing");
  EXPECT_EQ(models.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(models.status().message(), HasSubstr(base_ + "/missing"));
}

TEST_F(ConfigDirTest, StoreFailsTheModelWithTheFileAsReasonAndRescanReReads) {
  WriteConfig("m.pbtxt", "select: 7 7\n");
  StoreOptions options;
  options.repository = repo_;
  options.model_config_dir = dir_;
  absl::StatusOr<std::unique_ptr<ModelStore>> store = ModelStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<ModelStatus> m = (*store)->Status("m");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->versions.size(), 1u);
  EXPECT_EQ(m->versions[0].state, VersionState::kFailed);
  EXPECT_THAT(m->versions[0].reason, HasSubstr(dir_ + "/m.pbtxt"));

  WriteConfig("m.pbtxt", "select: \"fixed\"\n");
  ASSERT_TRUE((*store)->Rescan().ok());
  m = (*store)->Status("m");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->versions[0].state, VersionState::kUnloaded);
  absl::StatusOr<v1::ModelConfig> config = (*store)->Config("m");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->select(), "fixed");

  fs::remove(dir_ + "/m.pbtxt");
  ASSERT_TRUE((*store)->Rescan().ok());
  EXPECT_EQ((*store)->Config("m")->select(), "from_repo") << "back to the repository's file";
}

TEST_F(ConfigDirTest, StoreReportsScanWarningsOnOpenAndRescan) {
  WriteConfig("nope.pbtxt", "select: \"x\"\n");
  std::vector<std::string> warnings;
  StoreOptions options;
  options.repository = repo_;
  options.model_config_dir = dir_;
  options.on_warning = [&](absl::string_view w) { warnings.emplace_back(w); };
  absl::StatusOr<std::unique_ptr<ModelStore>> store = ModelStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("nope.pbtxt"));
  ASSERT_TRUE((*store)->Rescan().ok());
  EXPECT_EQ(warnings.size(), 2u);
}

TEST_F(ConfigDirTest, StoreOpenFailsOnAMissingDirectory) {
  StoreOptions options;
  options.repository = repo_;
  options.model_config_dir = base_ + "/missing";
  EXPECT_EQ(ModelStore::Open(options).status().code(), absl::StatusCode::kNotFound);
}

// The real test repository's "configured" model strips "module." by its
// model.pbtxt; a config-dir file that only selects the state dict replaces
// that, so the same target no longer matches.
class ConfigDirServerTest : public ServerTest {
 protected:
  v1::MatchReport MatchLenetTarget(const std::string& config_dir) {
    ServerOptions options;
    options.repository = repo_;
    options.listen = "127.0.0.1:0";
    options.model_config_dir = config_dir;
    absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return {};
    std::unique_ptr<v1::WeightService::Stub> stub = v1::WeightService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));
    v1::MatchRequest request;
    request.set_model("configured");
    for (const auto& t : Expected()["lenet"]) {
      v1::TargetTensor* target = request.add_target();
      target->set_name(t["name"].get<std::string>());
      target->set_dtype(t["dtype"].get<std::string>());
      for (int64_t d : t["shape"]) target->add_shape(d);
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::MatchReport report;
    grpc::Status status = stub->Match(&context, request, &report);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return report;
  }
};

TEST_F(ConfigDirServerTest, ServedModelFollowsTheConfigDirFile) {
  const std::string dir = repo_ + ".configs";
  fs::create_directories(dir);
  EXPECT_EQ(MatchLenetTarget(dir).matched_size(), static_cast<int>(Expected()["lenet"].size()));
  std::ofstream(dir + "/configured.pbtxt") << "select: \"model_state_dict\"\n";
  v1::MatchReport report = MatchLenetTarget(dir);
  EXPECT_EQ(report.matched_size(), 0) << report.ShortDebugString();
  EXPECT_GT(report.missing_keys_size(), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace weightd::testing
