// The same-node path through the unchanged client API: a real server on TCP
// and a Unix socket in a temporary directory, the repository PyTorch wrote
// (make_client_repository.py), real LibTorch modules. Each load over unix:
// must take the local path (LoadReport::transport) and give what Python's
// load_state_dict gives; each fallback must take the stream and say why.
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "weightd/v1/weightd.pb.h"
#include "tests/client/client_test_util.h"

namespace weightd::testing {
namespace {

class ClientLocalTest : public ClientTest {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/wdcXXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/w.sock";
    Start();
  }
  void TearDown() override {
    unix_client_.reset();
    client_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Start(ServerOptions options = {}, ClientOptions client_options = {}) {
    unix_client_.reset();
    client_.reset();
    server_.reset();
    options.repository = TestDataDir() + "/repo";
    options.listen = absl::StrCat("127.0.0.1:0,unix:", socket_);
    absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ClientOptions tcp;
    tcp.target = absl::StrCat("127.0.0.1:", server_->port());
    client_ = std::make_unique<Client>(tcp);
    client_options.target = "unix:" + socket_;
    unix_client_ = std::make_unique<Client>(client_options);
  }

  std::string dir_;
  std::string socket_;
  std::unique_ptr<Client> unix_client_;
};

TEST_F(ClientLocalTest, LoadOverUnixIsLocalAndEqualsPythonAndTcp) {
  LeNet local, streamed;
  absl::StatusOr<LoadReport> r = unix_client_->Load(*local, "lenet");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "local") << r->transport_note;
  EXPECT_EQ(r->transport_note, "");
  EXPECT_EQ(Checksums(*local), ExpectedChecksums("lenet"));
  absl::StatusOr<LoadReport> s = client_->Load(*streamed, "lenet");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->transport, "stream");
  EXPECT_EQ(Checksums(*local), Checksums(*streamed));
  EXPECT_EQ(r->bytes, s->bytes);
  EXPECT_EQ(r->tensors, s->tensors);
  EXPECT_EQ(r->written, s->written);
  EXPECT_EQ(r->version, s->version);
}

TEST_F(ClientLocalTest, BigTensorsCopiedOnSeveralThreadsKeepEveryByte) {
  // 8 MiB tensors arrive whole from the mapping: split over 1-4 threads
  // (LoadOptions::copy_threads; 0 = at::get_num_threads()).
  for (int threads : {0, 1, 2, 3, 4}) {
    FourMatrices module;
    LoadOptions options;
    options.copy_threads = threads;
    absl::StatusOr<LoadReport> r = unix_client_->Load(module, "big", options);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->transport, "local") << r->transport_note;
    EXPECT_EQ(Checksums(module), ExpectedChecksums("big")) << threads << " threads";
  }
}

TEST_F(ClientLocalTest, QueuedCopiesAreInBeforeAScatterOrAStagedCommit) {
  // A non-contiguous destination gets its bytes through a scratch tensor,
  // a staged load through staged tensors: both read the queued copies.
  struct Transposed : torch::nn::Module {
    Transposed() {
      for (const char* name : {"a", "b", "c", "d"}) {
        register_parameter(name, torch::zeros({2048, 1024}).t());
      }
    }
  };
  for (bool staged : {false, true}) {
    Transposed module;
    ASSERT_FALSE(module.named_parameters()["a"].is_contiguous());
    LoadOptions options;
    options.copy_threads = 2;
    options.staged = staged;
    absl::StatusOr<LoadReport> r = unix_client_->Load(module, "big", options);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->transport, "local") << r->transport_note;
    EXPECT_EQ(Checksums(module), ExpectedChecksums("big")) << (staged ? "staged" : "in place");
  }
  FourMatrices contiguous;
  LoadOptions staged;
  staged.staged = true;
  staged.copy_threads = 3;
  absl::StatusOr<LoadReport> r = unix_client_->Load(contiguous, "big", staged);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Checksums(contiguous), ExpectedChecksums("big"));
}

TEST_F(ClientLocalTest, CastOnTheServerComesThroughTheMemfd) {
  // float16 file into a float32 module: the server casts (to the module's
  // dtype) into a sealed memfd.
  LeNet half;
  absl::StatusOr<LoadReport> r = unix_client_->Load(*half, "lenet_half");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "local") << r->transport_note;
  EXPECT_EQ(Checksums(*half), ExpectedChecksums("lenet_half_into_float32"));

  LeNet wide;
  wide->to(torch::kFloat64);
  r = unix_client_->Load(*wide, "lenet");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "local") << r->transport_note;
  // LibTorch's Module::to(dtype) also converts the int64 counter, which
  // Python's .double() leaves alone: compare it by value (as client_test).
  auto got = Checksums(*wide);
  auto expected = ExpectedChecksums("lenet_into_float64");
  got.erase("bn.num_batches_tracked");
  expected.erase("bn.num_batches_tracked");
  EXPECT_EQ(got, expected);
  EXPECT_EQ(wide->bn->num_batches_tracked.item<double>(), 7.0);
}

TEST_F(ClientLocalTest, ATransferDtypeIsConvertedHereAsOnTheStream) {
  LeNet module;
  LoadOptions options;
  options.transfer_dtype = DType::kBFloat16;
  absl::StatusOr<LoadReport> r = unix_client_->Load(*module, "lenet", options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "local") << r->transport_note;
  EXPECT_EQ(Checksums(*module), ExpectedChecksums("lenet_bf16_transfer"));
}

TEST_F(ClientLocalTest, LegacyAndWholeModelFilesAreServedFromTheirFile) {
  for (const char* model : {"lenet_whole_legacy", "lenet_whole"}) {
    LeNet module;
    absl::StatusOr<LoadReport> r = unix_client_->Load(*module, model);
    ASSERT_TRUE(r.ok()) << model << ": " << r.status();
    EXPECT_EQ(r->transport, "local") << model << ": " << r->transport_note;
    EXPECT_EQ(Checksums(*module), ExpectedChecksums("lenet")) << model;
  }
}

TEST_F(ClientLocalTest, StagedAndVerifiedLoadsWorkLocally) {
  Start({}, ClientOptions{.verify_local_checksums = true});
  LeNet module;
  LoadOptions options;
  options.staged = true;
  absl::StatusOr<LoadReport> r = unix_client_->Load(*module, "lenet", options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "local") << r->transport_note;
  EXPECT_EQ(Checksums(*module), ExpectedChecksums("lenet"));
}

TEST_F(ClientLocalTest, AFailingMatchFailsAsOnTheStream) {
  LeNetImpl head(100);
  LoadReport local, streamed;
  absl::Status a = unix_client_->Load(head, "lenet", {}, &local);
  absl::Status b = client_->Load(head, "lenet", {}, &streamed);
  EXPECT_EQ(a.code(), absl::StatusCode::kFailedPrecondition) << a;
  EXPECT_EQ(a, b);
  EXPECT_EQ(local.transport, "local");
  EXPECT_EQ(local.mismatched.size(), streamed.mismatched.size());
  EXPECT_FALSE(local.mismatched.empty());
  EXPECT_TRUE(local.written.empty());
}

TEST_F(ClientLocalTest, FetchHostOverUnixEqualsTcpAndSaysLocal) {
  TransportInfo local, streamed;
  FetchSpec spec;
  spec.transport = &local;
  absl::StatusOr<StateDict> a = unix_client_->FetchHost("big", spec);
  ASSERT_TRUE(a.ok()) << a.status();
  spec.transport = &streamed;
  absl::StatusOr<StateDict> b = client_->FetchHost("big", spec);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(local.transport, "local") << local.note;
  EXPECT_EQ(streamed.transport, "stream");
  EXPECT_THAT(streamed.note, ::testing::HasSubstr("not unix"));
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].first, (*b)[i].first);
    EXPECT_EQ((*a)[i].second.Checksum(), (*b)[i].second.Checksum()) << (*a)[i].first;
    EXPECT_EQ(absl::StrCat(absl::Hex((*a)[i].second.Checksum(), absl::kZeroPad16)),
              Expected().at("big").at((*a)[i].first).get<std::string>());
  }
}

TEST_F(ClientLocalTest, FetchedTensorsAreCopiesTheCallerMayWrite) {
  FetchOptions options;
  TransportInfo transport;
  options.transport = &transport;
  absl::StatusOr<TensorMap> fetched = unix_client_->Fetch("lenet", options);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(transport.transport, "local") << transport.note;
  absl::StatusOr<TensorMap> again = unix_client_->Fetch("lenet");
  ASSERT_TRUE(again.ok()) << again.status();
  torch::Tensor w = (*fetched)["conv1.weight"];
  const std::string before = Checksum((*again)["conv1.weight"]);
  EXPECT_EQ(Checksum(w), before);
  w.add_(1.0);  // would fault on a read-only mapping
  EXPECT_NE(Checksum(w), before);
  absl::StatusOr<TensorMap> third = unix_client_->Fetch("lenet");
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(Checksum((*third)["conv1.weight"]), before) << "the server's bytes are unchanged";
}

TEST_F(ClientLocalTest, TurnedOffItTakesTheStream) {
  Start({}, ClientOptions{.local = false});
  LeNet module;
  absl::StatusOr<LoadReport> r = unix_client_->Load(*module, "lenet");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "stream");
  EXPECT_THAT(r->transport_note, ::testing::HasSubstr("ClientOptions.local"));
  EXPECT_EQ(Checksums(*module), ExpectedChecksums("lenet"));
}

TEST_F(ClientLocalTest, ADescriptorThatDoesNotFitItsLayoutFallsBackToTheStream) {
  ServerOptions options;
  // A server whose layout claims a size the descriptor does not have.
  options.local_response_hook = [](v1::LocalFetchResponse* response) {
    if (response->files_size() > 0) {
      response->mutable_files(0)->set_size(response->files(0).size() + 4096);
    }
  };
  Start(options);
  LeNet module;
  absl::StatusOr<LoadReport> r = unix_client_->Load(*module, "lenet");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "stream");
  EXPECT_THAT(r->transport_note, ::testing::HasSubstr("the layout says"));
  EXPECT_EQ(Checksums(*module), ExpectedChecksums("lenet"));
}

TEST_F(ClientLocalTest, AMissingSideChannelFallsBackToTheStream) {
  ASSERT_EQ(::unlink((socket_ + ".fds").c_str()), 0);
  LeNet module;
  absl::StatusOr<LoadReport> r = unix_client_->Load(*module, "lenet");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "stream");
  EXPECT_THAT(r->transport_note, ::testing::HasSubstr("side channel"));
  EXPECT_EQ(Checksums(*module), ExpectedChecksums("lenet"));
}

TEST_F(ClientLocalTest, ATcpTargetTakesTheStreamAndSaysWhy) {
  LeNet module;
  absl::StatusOr<LoadReport> r = client_->Load(*module, "lenet");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "stream");
  EXPECT_THAT(r->transport_note, ::testing::HasSubstr("not unix:PATH"));
}

TEST_F(ClientLocalTest, ARefusedLocalFetchFallsBackToTheStream) {
  ServerOptions options;
  options.local_max_pending = 0;  // every LocalFetch: RESOURCE_EXHAUSTED
  Start(options);
  LeNet module;
  absl::StatusOr<LoadReport> r = unix_client_->Load(*module, "lenet");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "stream");
  EXPECT_THAT(r->transport_note, ::testing::HasSubstr("LocalFetch refused"));
  EXPECT_EQ(Checksums(*module), ExpectedChecksums("lenet"));
}

TEST_F(ClientLocalTest, UnixTargetSpellingsAreBothLocal) {
  Start({}, ClientOptions{});
  ClientOptions options;
  options.target = "unix://" + socket_;
  Client client(options);
  LeNet module;
  absl::StatusOr<LoadReport> r = client.Load(*module, "lenet");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->transport, "local") << r->transport_note;
}

}  // namespace
}  // namespace weightd::testing
