// Cold start (issue 15): what GetManifestRequest.checksums and
// FetchRequest.checksum_trailer change, against a real server over the
// PyTorch-written test repository. Checksums are compared with the ones
// Python computed (expected.json), so an empty or wrong one shows.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

class ColdStartTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    StartServer();
  }

  std::vector<std::string> ManifestChecksums(const std::string& model, v1::Checksums which) {
    grpc::ClientContext context;
    v1::GetManifestRequest request;
    request.set_model(model);
    request.set_checksums(which);
    v1::GetManifestResponse manifest;
    grpc::Status status = stub_->GetManifest(&context, request, &manifest);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> out;
    for (const v1::TensorInfo& t : manifest.tensors()) out.push_back(t.checksum());
    return out;
  }

  static std::vector<std::string> PythonChecksums(const std::string& model) {
    std::vector<std::string> out;
    for (const auto& t : Expected()[model]) out.push_back(t["checksum"]);
    return out;
  }

  static FetchResult FetchWithTrailer(v1::WeightService::Stub* stub, const std::string& model) {
    v1::FetchRequest request;
    request.set_model(model);
    request.set_chunk_bytes(64 << 10);  // several chunks per tensor of "big"
    request.set_checksum_trailer(true);
    return FetchAll(stub, request);
  }
};

TEST_F(ColdStartTest, KnownAndNoneLeaveUncomputedChecksumsEmpty) {
  const std::vector<std::string> empty(PythonChecksums("lenet").size(), "");
  EXPECT_EQ(ManifestChecksums("lenet", v1::CHECKSUMS_NONE), empty);
  EXPECT_EQ(ManifestChecksums("lenet", v1::CHECKSUMS_KNOWN), empty);
  // UNSPECIFIED is ALL, the meaning of requests from before the field.
  EXPECT_EQ(ManifestChecksums("lenet", v1::CHECKSUMS_UNSPECIFIED), PythonChecksums("lenet"));
  // Computed once, then known.
  EXPECT_EQ(ManifestChecksums("lenet", v1::CHECKSUMS_KNOWN), PythonChecksums("lenet"));
  EXPECT_EQ(ManifestChecksums("lenet", v1::CHECKSUMS_NONE), empty);
}

TEST_F(ColdStartTest, AFirstFetchSendsChecksumsAsTrailersAfterTheBytes) {
  FetchResult first = FetchWithTrailer(stub_.get(), "big");
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  const std::vector<std::string> python = PythonChecksums("big");
  ASSERT_EQ(first.tensors.size(), python.size());
  for (size_t i = 0; i < python.size(); ++i) {
    const FetchedTensor& t = first.tensors[i];
    EXPECT_EQ(t.header.checksum(), "") << t.header.name() << ": not hashed before its first byte";
    ASSERT_TRUE(t.trailer.has_value()) << t.header.name();
    EXPECT_EQ(*t.trailer, Xxh64(t.bytes)) << t.header.name();
    EXPECT_EQ(*t.trailer, python[i]) << t.header.name();
  }
}

TEST_F(ColdStartTest, ChecksumsAFetchComputedAreKnownToLaterCalls) {
  ASSERT_TRUE(FetchWithTrailer(stub_.get(), "big").status.ok());
  EXPECT_EQ(ManifestChecksums("big", v1::CHECKSUMS_KNOWN), PythonChecksums("big"));
  // Known now: in the headers, and no trailers.
  FetchResult second = FetchWithTrailer(stub_.get(), "big");
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  const std::vector<std::string> python = PythonChecksums("big");
  ASSERT_EQ(second.tensors.size(), python.size());
  for (size_t i = 0; i < python.size(); ++i) {
    EXPECT_EQ(second.tensors[i].header.checksum(), python[i]);
    EXPECT_FALSE(second.tensors[i].trailer.has_value());
  }
}

TEST_F(ColdStartTest, WithoutTheFlagEveryHeaderCarriesItsChecksum) {
  v1::FetchRequest request;
  request.set_model("big");
  FetchResult result = FetchAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  const std::vector<std::string> python = PythonChecksums("big");
  ASSERT_EQ(result.tensors.size(), python.size());
  for (size_t i = 0; i < python.size(); ++i) {
    EXPECT_EQ(result.tensors[i].header.checksum(), python[i]);
    EXPECT_FALSE(result.tensors[i].trailer.has_value());
  }
}

TEST_F(ColdStartTest, ACastTensorKeepsItsChecksumInTheHeaderAndTheViewIsNotTold) {
  v1::FetchRequest request;
  request.set_model("big");
  request.set_cast_dtype("bfloat16");
  request.set_checksum_trailer(true);
  FetchResult result = FetchAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  for (const FetchedTensor& t : result.tensors) {
    // Cast into a buffer first anyway: hashed there, before the header.
    EXPECT_EQ(t.header.checksum(), Xxh64(t.bytes)) << t.header.name();
    EXPECT_FALSE(t.trailer.has_value());
  }
  // The bfloat16 bytes' checksum is not the stored tensor's.
  const std::vector<std::string> empty(PythonChecksums("big").size(), "");
  EXPECT_EQ(ManifestChecksums("big", v1::CHECKSUMS_KNOWN), empty);
}

}  // namespace
}  // namespace weightd::testing
