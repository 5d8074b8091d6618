// LocalFetch and its side channel against a real server listening on TCP and
// a Unix socket in a temporary directory, over the repository PyTorch wrote
// (make_test_repository.py): descriptors, memfds, seals, pinning, refusals.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/ipc/fd_channel.h"
#include "core/ipc/sealed_memfd.h"
#include "server/local/local_layout.h"
#include "tests/server/local/local_test_util.h"

namespace weightd::testing {
namespace {

// name -> expected entry of `model` in expected.json.
std::map<std::string, nlohmann::json> ExpectedTensors(const std::string& model) {
  std::map<std::string, nlohmann::json> out;
  for (const nlohmann::json& t : Expected().at(model)) out[t.at("name")] = t;
  return out;
}

std::string PreadBytes(int fd, uint64_t offset, uint64_t n) {
  std::string out(n, '\0');
  EXPECT_EQ(::pread(fd, out.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  return out;
}

TEST_F(LocalServerTest, StoredTensorsComeAsTheCheckpointFileItself) {
  StartLocal();
  LocalResult r = LocalFetchAll(unix_stub_.get(), FetchOf("lenet"), /*checksums=*/true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.response.files_size(), 1);
  EXPECT_EQ(r.response.files(0).kind(), "checkpoint");
  EXPECT_EQ(r.response.files(0).name(), "lenet/1/model.pt");
  ASSERT_EQ(r.fds.size(), 1u);
  struct stat st;
  ASSERT_EQ(::fstat(r.fds[0].get(), &st), 0);
  struct stat file;
  ASSERT_EQ(::stat((repo_ + "/lenet/1/model.pt").c_str(), &file), 0);
  EXPECT_EQ(st.st_ino, file.st_ino) << "a descriptor of the repository file, not a copy";
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), r.response.files(0).size());
  auto expected = ExpectedTensors("lenet");
  ASSERT_EQ(r.response.tensors_size(), static_cast<int>(expected.size()));
  for (const v1::LocalTensor& t : r.response.tensors()) {
    const std::string bytes = PreadBytes(r.fds[t.file()].get(), t.offset(), t.nbytes());
    EXPECT_EQ(Xxh64(bytes), expected[t.name()].at("checksum")) << t.name();
    EXPECT_EQ(t.checksum(), expected[t.name()].at("checksum")) << t.name();
  }
  EXPECT_EQ(r.response.side_channel(), "w.sock.fds");
  EXPECT_GT(r.response.expires_ms(), 0u);
}

TEST_F(LocalServerTest, ChecksumsAreLeftOutUnlessAsked) {
  StartLocal();
  LocalResult r = LocalFetchAll(unix_stub_.get(), FetchOf("lenet"));
  ASSERT_TRUE(r.status.ok()) << r.status;
  for (const v1::LocalTensor& t : r.response.tensors()) EXPECT_EQ(t.checksum(), "") << t.name();
}

TEST_F(LocalServerTest, SafetensorsTensorsComeAsTheirFile) {
  StartLocal();
  LocalResult r = LocalFetchAll(unix_stub_.get(), FetchOf("embed"), true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.response.files_size(), 1);
  EXPECT_EQ(r.response.files(0).kind(), "checkpoint");
  EXPECT_EQ(r.response.files(0).name(), "embed.safetensors");
  auto expected = ExpectedTensors("embed");
  for (const v1::LocalTensor& t : r.response.tensors()) {
    EXPECT_EQ(Xxh64(PreadBytes(r.fds[t.file()].get(), t.offset(), t.nbytes())),
              expected[t.name()].at("checksum"))
        << t.name();
  }
}

TEST_F(LocalServerTest, CastTensorsComeInOneSealedAlignedMemfd) {
  StartLocal();
  v1::FetchRequest request = FetchOf("lenet");
  request.set_cast_dtype("float16");
  LocalResult r = LocalFetchAll(unix_stub_.get(), request, true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.response.files_size(), 1);
  EXPECT_EQ(r.response.files(0).kind(), "memfd");
  const int fd = r.fds[0].get();
  EXPECT_EQ(::fcntl(fd, F_GET_SEALS), SealedMemfdSeals());
  auto expected = ExpectedTensors("lenet");
  for (const v1::LocalTensor& t : r.response.tensors()) {
    EXPECT_EQ(t.dtype(), "float16");
    EXPECT_EQ(t.offset() % kMemfdAlignment, 0u) << t.name();
    if (!expected[t.name()].contains("cast")) continue;  // integer tensors
    EXPECT_EQ(Xxh64(PreadBytes(fd, t.offset(), t.nbytes())),
              expected[t.name()].at("cast").at("float16"))
        << t.name();
    EXPECT_EQ(t.checksum(), expected[t.name()].at("cast").at("float16")) << t.name();
  }
}

TEST_F(LocalServerTest, NonContiguousTensorsGoToTheMemfdTheRestStayInTheFile) {
  StartLocal();
  LocalResult r = LocalFetchAll(unix_stub_.get(), FetchOf("ddp"), true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.response.files_size(), 2);
  EXPECT_EQ(r.response.files(0).kind(), "checkpoint");
  EXPECT_EQ(r.response.files(1).kind(), "memfd");
  auto expected = ExpectedTensors("ddp");
  bool saw_memfd = false;
  for (const v1::LocalTensor& t : r.response.tensors()) {
    if (t.name() == "module.weight") {
      EXPECT_EQ(t.file(), 1u) << "a transposed view needs a row-major copy";
      saw_memfd = true;
    }
    EXPECT_EQ(Xxh64(PreadBytes(r.fds[t.file()].get(), t.offset(), t.nbytes())),
              expected[t.name()].at("checksum"))
        << t.name();
  }
  EXPECT_TRUE(saw_memfd);
}

// "A client cannot change what another client sees": the descriptors are
// read-only, the memfd sealed.
TEST_F(LocalServerTest, ReceivedDescriptorsCannotBeWrittenOrMappedWritable) {
  StartLocal();
  v1::FetchRequest request = FetchOf("ddp");  // a checkpoint fd and a memfd
  LocalResult r = LocalFetchAll(unix_stub_.get(), request);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.fds.size(), 2u);
  for (size_t i = 0; i < r.fds.size(); ++i) {
    SCOPED_TRACE(r.response.files(static_cast<int>(i)).kind());
    const int fd = r.fds[i].get();
    const size_t size = r.response.files(static_cast<int>(i)).size();
    EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    char byte = 'x';
    EXPECT_LT(::pwrite(fd, &byte, 1, 0), 0);
    EXPECT_NE(::ftruncate(fd, 0), 0);
    EXPECT_EQ(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
    void* ro = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(ro, MAP_FAILED);
    EXPECT_NE(::mprotect(ro, size, PROT_READ | PROT_WRITE), 0) << "upgraded to writable";
    ::munmap(ro, size);
    // A private writable mapping is allowed, and changes nothing for others.
    void* priv = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ASSERT_NE(priv, MAP_FAILED);
    const char before = PreadBytes(fd, 0, 1)[0];
    static_cast<char*>(priv)[0] = static_cast<char>(before + 1);
    EXPECT_EQ(PreadBytes(fd, 0, 1)[0], before);
    ::munmap(priv, size);
  }
  // The memfd as the server created it can no longer grow, shrink or take
  // writes either (the seals, not just the read-only descriptor).
  const std::string self = absl::StrCat("/proc/self/fd/", r.fds[1].get());
  UniqueFd rw(::open(self.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(rw.valid());
  char byte = 'x';
  EXPECT_LT(::pwrite(rw.get(), &byte, 1, 0), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(rw.get(), 1), 0);
  EXPECT_NE(::fcntl(rw.get(), F_ADD_SEALS, F_SEAL_GROW), 0) << "F_SEAL_SEAL: seals are final";
}

// A held descriptor pins its bytes: unload, a replaced file, a rescan and a
// new version change nothing a client has mapped.
TEST_F(LocalServerTest, MappedBytesSurviveUnloadReplaceRescanAndNewVersion) {
  StartLocal();
  LocalResult r = LocalFetchAll(unix_stub_.get(), FetchOf("big"));
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.fds.size(), 1u);
  const size_t size = r.response.files(0).size();
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, r.fds[0].get(), 0);
  ASSERT_NE(map, MAP_FAILED);
  r.fds.clear();  // the mapping alone must hold the bytes
  auto expected = ExpectedTensors("big");

  {
    grpc::ClientContext context;
    v1::UnloadModelRequest unload;
    unload.set_model("big");
    v1::UnloadModelResponse unloaded;
    ASSERT_TRUE(admin_->UnloadModel(&context, unload, &unloaded).ok());
  }
  // Atomic replacement, as repositories are published: a new inode.
  const std::string path = repo_ + "/big/1/model.pt";
  std::filesystem::copy_file(repo_ + "/lenet/1/model.pt", path + ".tmp");
  ASSERT_EQ(::rename((path + ".tmp").c_str(), path.c_str()), 0);
  std::filesystem::create_directories(repo_ + "/big/2");
  std::filesystem::copy_file(repo_ + "/lenet/1/model.pt", repo_ + "/big/2/model.pt");
  {
    grpc::ClientContext context;
    v1::RescanResponse rescanned;
    ASSERT_TRUE(admin_->Rescan(&context, v1::RescanRequest(), &rescanned).ok());
  }
  // The server now serves the new bytes ...
  FetchResult now = FetchAll(stub_.get(), FetchOf("big"));
  ASSERT_TRUE(now.status.ok()) << now.status.error_message();
  EXPECT_EQ(now.tensors.front().header.name(), "conv1.weight");
  // ... and the old mapping still holds the old ones.
  for (const v1::LocalTensor& t : r.response.tensors()) {
    EXPECT_EQ(Xxh64(std::string(static_cast<const char*>(map) + t.offset(), t.nbytes())),
              expected[t.name()].at("checksum"))
        << t.name();
  }
  ::munmap(map, size);
}

TEST_F(LocalServerTest, RefusedOverTcpWithNoHandle) {
  StartLocal();
  grpc::ClientContext context;
  v1::LocalFetchRequest request;
  *request.mutable_fetch() = FetchOf("lenet");
  v1::LocalFetchResponse response;
  grpc::Status status = stub_->LocalFetch(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("Unix socket"));
  EXPECT_EQ(server_->pending_local_handles(), 0u);
}

TEST_F(LocalServerTest, RefusedByAServerWithoutUnixSocket) {
  StartServer();  // TCP only
  grpc::ClientContext context;
  v1::LocalFetchRequest request;
  *request.mutable_fetch() = FetchOf("lenet");
  v1::LocalFetchResponse response;
  grpc::Status status = stub_->LocalFetch(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("listens on no Unix socket"));
}

TEST_F(LocalServerTest, AFailingMatchGetsItsReportAndNoHandle) {
  StartLocal();
  v1::FetchRequest request = FetchOf("lenet");
  v1::TargetTensor* t = request.add_target();
  t->set_name("no.such.weight");
  t->set_dtype("float32");
  t->add_shape(3);
  request.mutable_options()->set_strictness(v1::STRICTNESS_STRICT);
  grpc::ClientContext context;
  v1::LocalFetchRequest local;
  *local.mutable_fetch() = request;
  v1::LocalFetchResponse response;
  ASSERT_TRUE(unix_stub_->LocalFetch(&context, local, &response).ok());
  EXPECT_FALSE(response.report().ok());
  EXPECT_EQ(response.handle(), "");
  EXPECT_EQ(response.tensors_size(), 0);
  EXPECT_EQ(server_->pending_local_handles(), 0u);
}

TEST_F(LocalServerTest, UnknownModelIsNotFound) {
  StartLocal();
  LocalResult r = LocalFetchAll(unix_stub_.get(), FetchOf("nope"));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kNotFound) << r.status;
}

TEST_F(LocalServerTest, RequestLimitsApplyAsToFetch) {
  ServerOptions options;
  options.request_limits.max_target_entries = 2;
  StartLocal(options);
  v1::FetchRequest request = FetchOf("lenet");
  for (const char* key : {"conv1.weight", "conv1.bias", "fc1.bias"}) request.add_keys(key);
  LocalResult r = LocalFetchAll(unix_stub_.get(), request);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << r.status;
}

TEST_F(LocalServerTest, AFullHandleTableIsResourceExhausted) {
  ServerOptions options;
  options.local_max_pending = 2;
  StartLocal(options);
  std::vector<v1::LocalFetchResponse> kept;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<v1::LocalFetchResponse> response = CallLocalFetch(unix_stub_.get(), FetchOf("lenet"));
    ASSERT_TRUE(response.ok()) << response.status();
    kept.push_back(*response);
  }
  absl::StatusOr<v1::LocalFetchResponse> third = CallLocalFetch(unix_stub_.get(), FetchOf("lenet"));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  // Redeeming one frees its place.
  ASSERT_TRUE(RedeemFdHandle(side_channel_, kept[0].handle(), absl::Now() + absl::Seconds(5)).ok());
  EXPECT_TRUE(CallLocalFetch(unix_stub_.get(), FetchOf("lenet")).ok());
}

TEST_F(LocalServerTest, SocketsGetTheModeAndGroupAsked) {
  ServerOptions options;
  options.unix_socket_mode = 0640;
  options.unix_socket_group = "1";  // root may hand any group; others their own
  if (::geteuid() != 0) options.unix_socket_group = absl::StrCat(::getegid());
  StartLocal(options);
  for (const std::string& path : {socket_, side_channel_}) {
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << path;
    EXPECT_EQ(st.st_mode & 07777, 0640u) << path;
    EXPECT_EQ(st.st_gid, ::geteuid() == 0 ? 1u : ::getegid()) << path;
  }
}

TEST_F(LocalServerTest, DefaultModeIs0660) {
  StartLocal();
  for (const std::string& path : {socket_, side_channel_}) {
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 07777, 0660u) << path;
  }
}

TEST_F(LocalServerTest, AnUnknownGroupIsAnError) {
  ServerOptions options = Options();
  options.unix_socket_group = "no-such-group-weightd";
  absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), ::testing::HasSubstr("no-such-group-weightd"));
}

TEST_F(LocalServerTest, AStaleSocketIsReplacedALiveOneIsAnError) {
  // A socket file nobody listens on, as a killed daemon leaves it.
  {
    UniqueFd dead(::socket(AF_UNIX, SOCK_STREAM, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_.c_str(), socket_.size());
    ASSERT_EQ(::bind(dead.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0);
  }
  StartLocal();
  EXPECT_TRUE(CallLocalFetch(unix_stub_.get(), FetchOf("lenet")).ok());
  absl::StatusOr<std::unique_ptr<WeightServer>> second = WeightServer::Start(Options());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists) << second.status();
  // The first server still serves on its socket.
  EXPECT_TRUE(CallLocalFetch(unix_stub_.get(), FetchOf("lenet")).ok());
}

TEST_F(LocalServerTest, ARegularFileAtTheSocketPathIsNotReplaced) {
  { std::ofstream(socket_) << "precious"; }
  absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(Options());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition) << server.status();
  std::ifstream in(socket_);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "precious");
}

TEST_F(LocalServerTest, ShutdownRemovesBothSocketFiles) {
  StartLocal();
  server_->Shutdown(absl::ZeroDuration());
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(side_channel_));
  EXPECT_FALSE(std::filesystem::exists(socket_));
}

TEST_F(LocalServerTest, ListeningListsEveryAddressInOrder) {
  StartLocal();
  ASSERT_EQ(server_->listening().size(), 2u);
  EXPECT_EQ(server_->listening()[0], absl::StrCat("127.0.0.1:", server_->port()));
  EXPECT_EQ(server_->listening()[1], "unix:" + socket_);
}

}  // namespace
}  // namespace weightd::testing
