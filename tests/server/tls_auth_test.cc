// TLS, mTLS and bearer tokens against a real server, with certificates that
// openssl makes at test time (a CA, a server certificate for
// localhost/127.0.0.1, a client certificate).
#include <cstdlib>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/auth/authorizer.h"
#include "server/auth/token_store.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr char kReadToken[] = "read-token-0123";
constexpr char kAdminToken[] = "admin-token-4567";

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A CA, and server and client certificates it signed, in a temp directory.
class Certificates {
 public:
  static const Certificates& Get() {
    static const Certificates* certs = new Certificates();
    return *certs;
  }
  std::string dir;
  std::string Path(const std::string& name) const { return dir + "/" + name; }
  std::string Pem(const std::string& name) const { return ReadText(Path(name)); }

 private:
  Certificates() {
    dir = absl::StrCat(::testing::TempDir(), "/weightd_certs_", getpid());
    fs::create_directories(dir);
    std::ofstream(dir + "/server.ext")
        << "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
    std::ofstream(dir + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    const std::string script = absl::StrCat(
        "set -e; cd '", dir, "'; K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';",
        "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=weightd-test-ca;",
        "for n in server client; do",
        "  openssl req $K -keyout $n.key -out $n.csr -subj /CN=weightd-$n;",
        "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial",
        "    -out $n.pem -days 2 -extfile $n.ext;", "done");
    std::ofstream(dir + "/make.sh") << script << "\n";
    const std::string command = absl::StrCat("bash '", dir, "/make.sh' >/dev/null 2>&1");
    if (std::system(command.c_str()) != 0) ADD_FAILURE() << "openssl failed: " << command;
  }
};

class TlsAuthTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    tokens_file_ = repo_ + ".tokens";
    std::ofstream(tokens_file_) << "# test tokens\n"
                                << kReadToken << " read\n\n"
                                << kAdminToken << "   admin\n";
  }
  void TearDown() override {
    ServerTest::TearDown();
    fs::remove(tokens_file_);
  }

  void Start(bool tls, bool mtls, bool tokens, const std::string& health_listen = "") {
    const Certificates& certs = Certificates::Get();
    ServerOptions options;
    options.repository = repo_;
    options.listen = "127.0.0.1:0";
    if (tls) {
      options.tls_cert = certs.Path("server.pem");
      options.tls_key = certs.Path("server.key");
    }
    if (mtls) options.tls_client_ca = certs.Path("ca.pem");
    if (tokens) options.auth_tokens_file = tokens_file_;
    options.health_listen = health_listen;
    absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // A channel to the server: TLS trusting the test CA (with the client
  // certificate if `client_cert`) or plaintext.
  void Connect(bool tls, bool client_cert) {
    const Certificates& certs = Certificates::Get();
    if (tls) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = certs.Pem("ca.pem");
      if (client_cert) {
        ssl.pem_private_key = certs.Pem("client.key");
        ssl.pem_cert_chain = certs.Pem("client.pem");
      }
      channel_ = grpc::CreateChannel(absl::StrCat("localhost:", server_->port()),
                                     grpc::SslCredentials(ssl));
    } else {
      channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                     grpc::InsecureChannelCredentials());
    }
    stub_ = v1::WeightService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  static void Prepare(grpc::ClientContext* context, const std::string& token) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  }

  grpc::Status List(const std::string& token = "") {
    grpc::ClientContext context;
    Prepare(&context, token);
    v1::ListModelsResponse response;
    return stub_->ListModels(&context, v1::ListModelsRequest(), &response);
  }

  grpc::Status Rescan(const std::string& token) {
    grpc::ClientContext context;
    Prepare(&context, token);
    v1::RescanResponse response;
    return admin_->Rescan(&context, v1::RescanRequest(), &response);
  }

  grpc::Status Health() {
    grpc::ClientContext context;
    Prepare(&context, "");
    grpc::health::v1::HealthCheckResponse response;
    return grpc::health::v1::Health::NewStub(channel_)->Check(
        &context, grpc::health::v1::HealthCheckRequest(), &response);
  }

  std::string tokens_file_;
};

TEST_F(TlsAuthTest, TlsServerServesATlsClient) {
  Start(/*tls=*/true, /*mtls=*/false, /*tokens=*/false);
  Connect(/*tls=*/true, /*client_cert=*/false);
  EXPECT_TRUE(List().ok());
}

TEST_F(TlsAuthTest, TlsServerRefusesPlaintext) {
  Start(true, false, false);
  Connect(/*tls=*/false, false);
  EXPECT_EQ(List().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsAuthTest, MtlsServerRefusesAClientWithoutCertificate) {
  Start(true, /*mtls=*/true, false);
  Connect(true, /*client_cert=*/false);
  EXPECT_EQ(List().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsAuthTest, MtlsServerServesAClientWithCertificate) {
  Start(true, true, false);
  Connect(true, /*client_cert=*/true);
  EXPECT_TRUE(List().ok());
}

TEST_F(TlsAuthTest, CallWithoutTokenIsUnauthenticated) {
  Start(true, false, /*tokens=*/true);
  Connect(true, false);
  grpc::Status status = List();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("Bearer"));
}

TEST_F(TlsAuthTest, UnknownTokenIsUnauthenticated) {
  Start(true, false, true);
  Connect(true, false);
  EXPECT_EQ(List("no-such-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(TlsAuthTest, ReadTokenReadsButCallingAdminIsPermissionDenied) {
  Start(true, false, true);
  Connect(true, false);
  EXPECT_TRUE(List(kReadToken).ok());
  grpc::Status status = Rescan(kReadToken);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("admin"));
}

TEST_F(TlsAuthTest, AdminTokenCallsAdminAndReads) {
  Start(true, true, true);
  Connect(true, true);
  EXPECT_TRUE(Rescan(kAdminToken).ok());
  EXPECT_TRUE(List(kAdminToken).ok());
}

TEST_F(TlsAuthTest, AnAdminCallDoesNotAuthorizeTheNextCallOnTheConnection) {
  Start(true, false, true);
  Connect(true, false);
  ASSERT_TRUE(Rescan(kAdminToken).ok());
  EXPECT_EQ(Rescan("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Rescan(kReadToken).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(TlsAuthTest, HealthAnswersWithoutToken) {
  Start(true, false, true);
  Connect(true, false);
  EXPECT_TRUE(Health().ok());
}

// A plaintext channel to the health-only port (--health_listen).
std::shared_ptr<grpc::Channel> HealthPortChannel(const WeightServer& server) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.health_port()),
                             grpc::InsecureChannelCredentials());
}

grpc::health::v1::HealthCheckResponse::ServingStatus CheckOn(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status =
      grpc::health::v1::Health::NewStub(channel)->Check(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.status();
}

TEST_F(TlsAuthTest, HealthPortAnswersPlaintextProbesWhileTheMainPortNeedsMtls) {
  Start(/*tls=*/true, /*mtls=*/true, /*tokens=*/true, "127.0.0.1:0");
  ASSERT_NE(server_->health_port(), 0);
  ASSERT_NE(server_->health_port(), server_->port());
  std::shared_ptr<grpc::Channel> health = HealthPortChannel(*server_);
  EXPECT_EQ(CheckOn(health, ""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckOn(health, "weightd.v1.WeightService"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckOn(health, "weightd.v1.WeightService/lenet"),
            grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(TlsAuthTest, HealthPortDoesNotServeTheWeightService) {
  Start(true, true, true, "127.0.0.1:0");
  std::unique_ptr<v1::WeightService::Stub> stub =
      v1::WeightService::NewStub(HealthPortChannel(*server_));
  grpc::ClientContext context;
  Prepare(&context, kAdminToken);
  v1::ListModelsResponse response;
  EXPECT_EQ(stub->ListModels(&context, v1::ListModelsRequest(), &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

// deploy/README.md's `grpcurl -plaintext localhost:8081 grpc.health.v1.Health/Check`
// needs reflection to describe Health on the health port.
TEST_F(TlsAuthTest, HealthPortIsReflectableAndListsHealthOnly) {
  Start(true, true, true, "127.0.0.1:0");
  std::shared_ptr<grpc::Channel> health = HealthPortChannel(*server_);
  std::vector<std::string> services = ReflectedServices(health.get());
  EXPECT_THAT(services, ::testing::Contains("grpc.health.v1.Health"));
  EXPECT_THAT(services, ::testing::Not(::testing::Contains("weightd.v1.WeightService")));
  EXPECT_THAT(services, ::testing::Not(::testing::Contains("weightd.v1.AdminService")));
  EXPECT_TRUE(ReflectionDescribes(health.get(), "grpc.health.v1.Health"));
}

TEST_F(TlsAuthTest, HealthPortReportsTheDrain) {
  Start(true, false, true, "127.0.0.1:0");
  std::shared_ptr<grpc::Channel> health = HealthPortChannel(*server_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::health::v1::HealthCheckRequest request;
  std::unique_ptr<grpc::ClientReader<grpc::health::v1::HealthCheckResponse>> watch =
      grpc::health::v1::Health::NewStub(health)->Watch(&context, request);
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  server_->Shutdown(absl::Seconds(5));
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&response));
}

TEST_F(TlsAuthTest, HealthPortThatCannotBeBoundFailsStartNamingTheFlag) {
  ServerOptions options;
  options.repository = repo_;
  options.health_listen = "192.0.2.1:0";  // TEST-NET-1: no local interface has it
  absl::StatusOr<std::unique_ptr<WeightServer>> second = WeightServer::Start(options);
  EXPECT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("--health_listen"));
}

TEST_F(TlsAuthTest, FetchWithoutTokenIsUnauthenticated) {
  Start(true, false, true);
  Connect(true, false);
  v1::FetchRequest request;
  request.set_model("lenet");
  EXPECT_EQ(FetchAll(stub_.get(), request).status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(TlsAuthTest, PlaintextServerChecksTokensInTheServices) {
  Start(/*tls=*/false, false, /*tokens=*/true);
  Connect(false, false);
  EXPECT_EQ(List().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(List(kReadToken).ok());
  EXPECT_EQ(Rescan(kReadToken).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Rescan(kAdminToken).ok());
  EXPECT_TRUE(Health().ok());
}

TEST_F(TlsAuthTest, ReloadedTokensReplaceTheOldOnes) {
  Start(false, false, true);
  Connect(false, false);
  std::ofstream(tokens_file_, std::ios::trunc) << "fresh-token read\n";
  ASSERT_TRUE(server_->ReloadTokens().ok());
  EXPECT_TRUE(List("fresh-token").ok());
  EXPECT_EQ(List(kReadToken).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(TlsAuthTest, ABadTokenFileOnReloadKeepsTheOldTokens) {
  Start(false, false, true);
  Connect(false, false);
  std::ofstream(tokens_file_, std::ios::trunc) << "some-token superuser\n";
  absl::Status reloaded = server_->ReloadTokens();
  EXPECT_EQ(reloaded.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reloaded.message(), HasSubstr(tokens_file_));
  EXPECT_TRUE(List(kReadToken).ok());
}

TEST_F(TlsAuthTest, StartFailsOnAMissingCertificateNamingIt) {
  ServerOptions options;
  options.repository = repo_;
  options.tls_cert = repo_ + "/missing.pem";
  options.tls_key = Certificates::Get().Path("server.key");
  absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("missing.pem"));
}

TEST_F(TlsAuthTest, ClientCaWithoutServerCertificateIsRejected) {
  ServerOptions options;
  options.repository = repo_;
  options.tls_client_ca = Certificates::Get().Path("ca.pem");
  EXPECT_EQ(WeightServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TokenFile, ParsesTokensRolesAndComments) {
  absl::StatusOr<TokenMap> tokens = ParseTokens("# c\n a read\n\nb\tadmin  \n", "t");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 2u);
  EXPECT_EQ(tokens->at("a"), Role::kRead);
  EXPECT_EQ(tokens->at("b"), Role::kAdmin);
}

TEST(TokenFile, RejectsAnUnknownRoleWithoutEchoingTheToken) {
  absl::StatusOr<TokenMap> tokens = ParseTokens("secret-xyz root\n", "tokens.txt");
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tokens.status().message(), HasSubstr("tokens.txt:1"));
  EXPECT_THAT(tokens.status().message(), ::testing::Not(HasSubstr("secret-xyz")));
}

TEST(TokenFile, RejectsALineWithoutRoleAndADuplicateToken) {
  EXPECT_FALSE(ParseTokens("lonely\n", "t").ok());
  EXPECT_FALSE(ParseTokens("a read\na admin\n", "t").ok());
}

TEST(TokenFile, RejectsAFileWithoutTokens) { EXPECT_FALSE(ParseTokens("# nothing\n", "t").ok()); }

TEST(BearerToken, TakesTheTokenOfABearerHeaderOnly) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer  abc "), "abc");
  EXPECT_EQ(BearerToken("Basic abc"), "");
  EXPECT_EQ(BearerToken("Bearer"), "");
}

}  // namespace
}  // namespace weightd::testing
