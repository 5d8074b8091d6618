// Fault tests (issue 7): what happens to a serving weightd when the files
// under it change or go bad on disk.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class FaultTest : public ServerTest {
 protected:
  grpc::Status Manifest(const std::string& model, v1::GetManifestResponse* out) {
    grpc::ClientContext context;
    v1::GetManifestRequest request;
    request.set_model(model);
    return stub_->GetManifest(&context, request, out);
  }

  void Rescan() {
    grpc::ClientContext context;
    v1::RescanResponse rescanned;
    grpc::Status status = admin_->Rescan(&context, v1::RescanRequest(), &rescanned);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  std::string StateReason(const std::string& model) {
    grpc::ClientContext context;
    v1::ListModelsResponse list;
    EXPECT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &list).ok());
    for (const v1::Model& m : list.models()) {
      if (m.name() == model && m.versions_size() > 0) return m.versions(0).reason();
    }
    return "<not listed>";
  }

  static std::vector<std::string> Checksums(const FetchResult& result) {
    std::vector<std::string> out;
    for (const FetchedTensor& t : result.tensors) out.push_back(Xxh64(t.bytes));
    return out;
  }
  static std::vector<std::string> ExpectedChecksums(const std::string& model) {
    std::vector<std::string> out;
    for (const auto& t : Expected()[model]) out.push_back(t["checksum"]);
    return out;
  }
};

TEST_F(FaultTest, AFileRenamedOverKeepsOpenStreamsOnTheOldBytesAndRescanServesTheNew) {
  StartServer();
  const std::string file = repo_ + "/big/1/model.pt";
  grpc::ClientContext context;
  v1::FetchRequest request;
  request.set_model("big");
  request.set_chunk_bytes(16 << 10);
  auto reader = stub_->Fetch(&context, request);
  v1::FetchResponse response;
  ASSERT_TRUE(reader->Read(&response) && response.has_report());
  ASSERT_TRUE(reader->Read(&response) && response.has_header());
  std::vector<std::string> tensors = {""};

  // A new version of the checkpoint is written beside it and renamed over
  // it, as `torch.save(...); os.replace(...)` does.
  fs::copy_file(repo_ + "/lenet/1/model.pt", file + ".tmp");
  fs::rename(file + ".tmp", file);
  Rescan();

  while (reader->Read(&response)) {
    if (response.has_header()) {
      tensors.emplace_back();
    } else {
      tensors.back() += response.chunk().data();
    }
  }
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<std::string> old_checksums;
  for (const std::string& t : tensors) old_checksums.push_back(Xxh64(t));
  EXPECT_EQ(old_checksums, ExpectedChecksums("big"));

  FetchResult fresh = FetchAll(stub_.get(), request);
  ASSERT_TRUE(fresh.status.ok()) << fresh.status.error_message();
  EXPECT_EQ(Checksums(fresh), ExpectedChecksums("lenet"));
}

TEST_F(FaultTest, AFileTruncatedOnDiskMakesItsModelFailWhileOthersServe) {
  StartServer();
  v1::GetManifestResponse manifest;
  ASSERT_TRUE(Manifest("big", &manifest).ok());
  const std::string file = repo_ + "/big/1/model.pt";
  fs::resize_file(file, fs::file_size(file) / 2);
  Rescan();

  grpc::Status status = Manifest("big", &manifest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
  EXPECT_THAT(StateReason("big"), HasSubstr("model.pt"));
  v1::FetchRequest request;
  request.set_model("lenet");
  FetchResult lenet = FetchAll(stub_.get(), request);
  ASSERT_TRUE(lenet.status.ok()) << lenet.status.error_message();
  EXPECT_EQ(Checksums(lenet), ExpectedChecksums("lenet"));
}

TEST_F(FaultTest, AnUnreadableFileGivesAnErrorNamingItWhileOthersServe) {
  const std::string file = repo_ + "/lenet/1/model.pt";
  ASSERT_EQ(chmod(file.c_str(), 0), 0);
  if (access(file.c_str(), R_OK) == 0) {
    chmod(file.c_str(), 0644);
    GTEST_SKIP() << "this process can read a mode-000 file (running as root or with "
                    "CAP_DAC_OVERRIDE), so permission denied cannot be provoked";
  }
  StartServer();
  v1::GetManifestResponse manifest;
  grpc::Status status = Manifest("lenet", &manifest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("model.pt"));
  EXPECT_THAT(StateReason("lenet"), HasSubstr("model.pt"));
  EXPECT_TRUE(Manifest("trainer", &manifest).ok());
  chmod(file.c_str(), 0644);  // so TearDown can remove it
}

// A file that disappears between the scan and the first load: the server's
// problem (FAILED_PRECONDITION naming the file), not "no such model".
TEST_F(FaultTest, AFileRemovedBeforeItsFirstLoadIsAServerFaultNamingIt) {
  StartServer();
  fs::remove(repo_ + "/big/1/model.pt");
  v1::GetManifestResponse manifest;
  grpc::Status status = Manifest("big", &manifest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("big/1/model.pt"));
  EXPECT_THAT(StateReason("big"), HasSubstr("No such file"));
  EXPECT_TRUE(Manifest("lenet", &manifest).ok());
}

}  // namespace
}  // namespace weightd::testing
