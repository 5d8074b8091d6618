#include "server/weight_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/security/server_credentials.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/ipc/fd_channel.h"
#include "server/bind_probe.h"
#include "server/local/handle_table.h"
#include "server/local/local_handoff.h"
#include "server/local/side_channel.h"
#include "server/local/unix_socket.h"
#include "server/metrics/metrics_interceptor.h"
#include "server/metrics/weightd_metrics.h"
#include "server/service/health_service.h"
#include "server/service/weight_service.h"

namespace weightd {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": not a PEM file"));
  }
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& options,
                                                                     const TokenStore* tokens) {
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (options.tls_cert.empty()) {
    if (!options.tls_client_ca.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
    }
    // Plaintext: tokens (if any) are checked by the services alone
    // (server/auth/authorizer.h says why).
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> cert = ReadPem(options.tls_cert, "--tls_cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(options.tls_key, "--tls_key");
  if (!key.ok()) return key.status();
  pair.cert_chain = *std::move(cert);
  pair.private_key = *std::move(key);
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!options.tls_client_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(options.tls_client_ca, "--tls_client_ca");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(ssl);
  if (tokens != nullptr) {
    credentials->SetAuthMetadataProcessor(std::make_shared<TokenProcessor>(tokens));
  }
  return credentials;
}

// The plaintext health-only server on `listen`; *port receives its port.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartHealthServer(const std::string& listen,
                                                                HealthService* health,
                                                                int* port) {
  // Health and, through the reflection plugin every builder of this process
  // gets, reflection: grpcurl needs it to call Health/Check. Reflection lists
  // this server's services only (Health and itself); the weight and admin
  // services are not registered here.
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second server on a taken port
  // would start and share its connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // The kubelet's probes speak plaintext; Health carries no secrets.
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), port);
  // A callback service without async methods may be registered with more
  // than one server: both ports share one health state.
  builder.RegisterService(health);
  builder.SetMaxReceiveMessageSize(64 << 10);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    return absl::UnavailableError(CannotListenMessage(listen, "--health_listen"));
  }
  return server;
}

// Sets the gauges computed from the store at each scrape.
void CollectStore(const ModelStore& store, MetricsRegistry& registry) {
  std::map<std::string, int> by_state;
  for (VersionState state : {VersionState::kUnloaded, VersionState::kLoading, VersionState::kReady,
                             VersionState::kFailed}) {
    by_state[std::string(VersionStateName(state))] = 0;
  }
  for (const ModelStatus& model : store.List()) {
    for (const VersionStatus& version : model.versions) {
      ++by_state[std::string(VersionStateName(version.state))];
    }
  }
  for (const auto& [state, count] : by_state) {
    registry.Set(metrics::kModels, {{"state", state}}, count);
  }
  registry.Set(metrics::kCacheBytes, {{"tier", "host"}}, static_cast<double>(store.host_bytes()));
  for (const GpuDeviceUsage& usage : store.gpu_tier().Usage()) {
    registry.Set(metrics::kCacheBytes, {{"tier", absl::StrCat("cuda:", usage.device)}},
                 static_cast<double>(usage.allocated_bytes));
  }
}

// Why gRPC could not listen on unix:PATH: a plain bind learns the errno.
std::string UnixBindFailure(const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::StrCat("path longer than ", sizeof(addr.sun_path) - 1, " bytes");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::bind(probe.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0) {
    ::unlink(path.c_str());
    return "unknown reason (see the log)";
  }
  std::string reason = std::strerror(errno);
  if (!reason.empty()) reason[0] = static_cast<char>(std::tolower(reason[0]));
  return reason;
}

}  // namespace

size_t WeightServer::pending_local_handles() const {
  return handles_ == nullptr ? 0 : handles_->pending();
}

std::vector<std::string> WeightServer::side_channel_paths() const {
  std::vector<std::string> out;
  for (const auto& channel : side_channels_) out.push_back(channel->path());
  return out;
}

absl::StatusOr<std::unique_ptr<WeightServer>> WeightServer::Start(ServerOptions options) {
  std::vector<std::string> addresses;
  for (absl::string_view a : absl::StrSplit(options.listen, ',', absl::SkipWhitespace())) {
    addresses.emplace_back(absl::StripAsciiWhitespace(a));
  }
  if (addresses.empty()) return absl::InvalidArgumentError("--listen: no address");
  std::vector<std::string> unix_paths;
  for (const std::string& a : addresses) {
    if (absl::StartsWith(a, "unix:")) unix_paths.push_back(a.substr(5));
  }
  UnixSocketAccess access;
  access.mode = static_cast<mode_t>(options.unix_socket_mode & 07777);
  if (!unix_paths.empty()) {
    absl::StatusOr<gid_t> group = ParseGroup(options.unix_socket_group);
    if (!group.ok()) return group.status();
    access.group = *group;
    for (const std::string& path : unix_paths) {
      // gRPC itself unlinks whatever socket is there, a live daemon's too.
      absl::Status clear = ClearStaleSocket(path, SOCK_STREAM);
      if (!clear.ok()) return clear;
      clear = ClearStaleSocket(SideChannelPath(path), SOCK_SEQPACKET);
      if (!clear.ok()) return clear;
    }
  }
  std::unique_ptr<WeightServer> server(new WeightServer());
  server->metrics_ = std::make_unique<MetricsRegistry>();
  metrics::DeclareAll(server->metrics_.get());
  if (!options.auth_tokens_file.empty()) {
    absl::StatusOr<std::unique_ptr<TokenStore>> tokens = TokenStore::Open(options.auth_tokens_file);
    if (!tokens.ok()) return tokens.status();
    server->tokens_ = *std::move(tokens);
  }
  server->authorizer_ = std::make_unique<Authorizer>(server->tokens_.get());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      Credentials(options, server->tokens_.get());
  if (!credentials.ok()) return credentials.status();

  StoreOptions store_options;
  store_options.repository = options.repository;
  store_options.model_config_dir = options.model_config_dir;
  store_options.follow_external_symlinks = options.follow_external_symlinks;
  store_options.host_cache_bytes = options.host_cache_bytes;
  store_options.gpu_cache_bytes = options.gpu_cache_bytes;
  store_options.gpu_fetch_from_device = options.gpu_fetch_from_device;
  store_options.gpu_backend = options.gpu_backend;
  store_options.preload = options.preload;
  store_options.on_warning = options.on_warning;
  store_options.on_load_failure = options.on_load_failure;
  store_options.metrics = server->metrics_.get();
  absl::StatusOr<std::unique_ptr<ModelStore>> store = ModelStore::Open(store_options);
  if (!store.ok()) return store.status();
  server->store_ = *std::move(store);

  server->local_config_ = std::make_unique<LocalFetchConfig>();
  if (!unix_paths.empty()) {
    server->handles_ =
        std::make_unique<HandleTable>(options.local_max_pending, options.local_handle_ttl);
    server->local_config_->handles = server->handles_.get();
    const std::string& first = unix_paths.front();
    server->local_config_->side_channel = SideChannelPath(first.substr(first.rfind('/') + 1));
  }
  server->local_config_->repository = options.repository;
  server->local_config_->response_hook = options.local_response_hook;

  WeightServiceOptions service_options;
  service_options.local = server->local_config_.get();
  service_options.authorizer = server->authorizer_.get();
  service_options.limits = options.request_limits;
  service_options.max_active_fetches = options.max_active_fetches;
  service_options.blocking_threads = options.load_threads;
  server->health_ = std::make_unique<HealthService>(server->store_.get());
  server->weight_service_ = std::make_unique<WeightService>(server->store_.get(), service_options);
  server->admin_service_ =
      std::make_unique<AdminService>(server->store_.get(), server->authorizer_.get());
  HealthService* health = server->health_.get();
  server->store_->SetListener([health] { health->Refresh(); });
  ModelStore* store_ptr = server->store_.get();
  server->metrics_->AddCollector(
      [store_ptr](MetricsRegistry& registry) { CollectStore(*store_ptr, registry); });

  // Once per process; registers the reflection service with every builder.
  static const bool reflection = [] {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    return true;
  }();
  (void)reflection;
  grpc::ServerBuilder builder;
  std::vector<int> ports(addresses.size(), 0);
  for (size_t i = 0; i < addresses.size(); ++i) {
    builder.AddListeningPort(addresses[i], *credentials, &ports[i]);
  }
  builder.RegisterService(server->weight_service_.get());
  builder.RegisterService(server->admin_service_.get());
  builder.RegisterService(server->health_.get());
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  // Without this, a second weightd on the same port starts too (gRPC's
  // default is SO_REUSEPORT) and the kernel splits connections between them.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (options.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  }
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             options.min_client_ping_interval_ms);
  // Clients may keep idle connections alive (trainers between epochs), at
  // the rate above.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (options.keepalive_time_ms > 0) {
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, options.keepalive_time_ms);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options.keepalive_timeout_ms);
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<MetricsInterceptorFactory>(server->metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  {
    // gRPC creates the socket files in BuildAndStart: under this umask they
    // are never wider than the mode, not even before the chmod below.
    std::optional<ScopedUmask> umask;
    if (!unix_paths.empty()) umask.emplace(access.mode);
    server->server_ = builder.BuildAndStart();
  }
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (server->server_ != nullptr && ports[i] != 0) continue;
    server->store_->SetListener(nullptr);
    server->Shutdown(absl::ZeroDuration());
    if (absl::StartsWith(addresses[i], "unix:")) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", addresses[i], ": ",
                                                 UnixBindFailure(addresses[i].substr(5))));
    }
    return absl::UnavailableError(CannotListenMessage(addresses[i]));
  }
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (absl::StartsWith(addresses[i], "unix:")) {
      server->listening_.push_back(addresses[i]);
      continue;
    }
    if (server->port_ == 0) server->port_ = ports[i];
    server->listening_.push_back(
        absl::StrCat(addresses[i].substr(0, addresses[i].rfind(':')), ":", ports[i]));
  }
  for (const std::string& path : unix_paths) {
    absl::Status applied = ApplySocketAccess(path, access);
    absl::StatusOr<std::unique_ptr<SideChannelServer>> channel;
    if (applied.ok()) {
      SideChannelOptions channel_options;
      channel_options.max_connections = options.local_max_connections;
      channel_options.request_timeout = options.local_request_timeout;
      channel = SideChannelServer::Start(SideChannelPath(path), access, server->handles_.get(),
                                         channel_options);
      if (!channel.ok()) applied = channel.status();
    }
    if (!applied.ok()) {
      server->Shutdown(absl::ZeroDuration());
      return applied;
    }
    server->side_channels_.push_back(*std::move(channel));
  }
  if (!options.health_listen.empty()) {
    absl::StatusOr<std::unique_ptr<grpc::Server>> health_server =
        StartHealthServer(options.health_listen, server->health_.get(), &server->health_port_);
    if (!health_server.ok()) {
      server->Shutdown(absl::ZeroDuration());
      return health_server.status();
    }
    server->health_server_ = *std::move(health_server);
  }
  if (!options.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<HttpExporter>> exporter =
        HttpExporter::Start(options.metrics_listen, server->metrics_.get());
    if (!exporter.ok()) {
      server->Shutdown(absl::ZeroDuration());
      return exporter.status();
    }
    server->exporter_ = *std::move(exporter);
  }
  return server;
}

WeightServer::~WeightServer() {
  if (exporter_ != nullptr) exporter_->Stop();
  Shutdown(absl::ZeroDuration());
  if (store_ != nullptr) store_->SetListener(nullptr);
}

absl::Status WeightServer::ReloadTokens() {
  if (tokens_ == nullptr) return absl::OkStatus();
  return tokens_->Reload();
}

void WeightServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr || shut_down_.exchange(true)) return;
  health_->BeginShutdown();
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoNanoseconds(grace);
  // Blocks until the main port has drained or the deadline passed.
  server_->Shutdown(deadline);
  // No LocalFetch hands out handles any more; those still waiting are void.
  for (auto& channel : side_channels_) channel->Stop();
  // Probes saw NOT_SERVING on the health port all along. Its Watch streams
  // ended at BeginShutdown; gRPC still waits, at most until the deadline,
  // for clients to close idle connections after its GOAWAY.
  if (health_server_ != nullptr) health_server_->Shutdown(deadline);
}

void WeightServer::Wait() {
  if (server_ != nullptr) server_->Wait();
  if (health_server_ != nullptr) health_server_->Wait();
}

}  // namespace weightd
