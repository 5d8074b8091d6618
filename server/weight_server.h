// The weightd server: model store + gRPC services (WeightService,
// AdminService, grpc.health.v1.Health, server reflection) on one port, and
// optionally grpc.health.v1.Health alone on a plaintext port for probes.
#ifndef WEIGHTD_SERVER_WEIGHT_SERVER_H_
#define WEIGHTD_SERVER_WEIGHT_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/auth/authorizer.h"
#include "server/auth/token_store.h"
#include "server/cache/model_store.h"
#include "server/metrics/http_exporter.h"
#include "server/metrics/registry.h"
#include "server/service/request_limits.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace weightd {

class HealthService;
class WeightService;
class AdminService;
class HandleTable;
class SideChannelServer;
struct LocalFetchConfig;
namespace v1 {
class LocalFetchResponse;
}  // namespace v1

struct ServerOptions {
  std::string repository;
  // <dir>/<model>.pbtxt files that replace the repository's model.pbtxt
  // (see server/repository/repository.h); empty: none.
  std::string model_config_dir;
  // Serve through symlinks that leave the repository; anyone who can write
  // the repository can then make the daemon read any file it can read.
  bool follow_external_symlinks = false;
  // HOST:PORT or unix:PATH, or several of them separated by commas
  // ("0.0.0.0:50051,unix:/run/weightd/weightd.sock"); port 0 picks a free
  // port (see port(), listening()). Each unix:PATH also gets the same-node
  // side channel PATH.fds (DESIGN.md section 9, LocalFetch).
  std::string listen = "127.0.0.1:0";
  // Permission bits and group of the Unix socket files (the gRPC socket and
  // its .fds side channel). Group empty: the daemon's; a name or a gid.
  uint32_t unix_socket_mode = 0660;
  std::string unix_socket_group;
  // Same-node path: how long a LocalFetch handle waits to be redeemed, how
  // many may wait at once (more: RESOURCE_EXHAUSTED), and how many
  // side-channel connections may be open at once (more are refused).
  absl::Duration local_handle_ttl = absl::Seconds(5);
  size_t local_max_pending = 256;
  size_t local_max_connections = 64;
  absl::Duration local_request_timeout = absl::Seconds(2);
  // Tests only: sees (and may spoil) each LocalFetch response.
  std::function<void(v1::LocalFetchResponse*)> local_response_hook;
  uint64_t host_cache_bytes = 0;  // 0: unlimited
  // GPU tier (model.pbtxt cache_tier: "cuda:N"; see StoreOptions): budget
  // per device (0: half of each device's memory), whether TCP Fetch reads
  // the device copy through pinned staging (else the host mmap), and the
  // devices (null: the CUDA runtime; tests pass a HostBackend).
  uint64_t gpu_cache_bytes = 0;
  bool gpu_fetch_from_device = true;
  std::shared_ptr<DeviceBackend> gpu_backend;
  bool preload = false;
  // Threads that run checkpoint loads and the RPC work waiting on them (see
  // server/service/work_pool.h), off gRPC's callback threads.
  int load_threads = 8;
  // Repository scan warnings (skipped entries, versions that cannot be
  // served) and failed loads/reloads with their reasons (see StoreOptions);
  // main logs them. Null: dropped.
  std::function<void(absl::string_view)> on_warning;
  std::function<void(absl::string_view)> on_load_failure;

  // TLS, PEM file paths. With tls_cert and tls_key the port speaks TLS only;
  // with tls_client_ca too, clients must present a certificate it signed.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Bearer tokens (see server/auth/token_store.h); empty: no token check.
  // WeightService needs role read, AdminService admin; health and
  // reflection are open.
  std::string auth_tokens_file;
  // HOST:PORT of the Prometheus endpoint (GET /metrics); empty: none.
  std::string metrics_listen;
  // HOST:PORT of a second, plaintext port that serves grpc.health.v1.Health
  // only (no auth), for probes that cannot speak TLS (the kubelet's). It
  // shares the health state of the main port, so a drain shows on it too,
  // and it keeps answering until the main port has drained. Empty: none.
  std::string health_listen;

  // Limits. Requests larger than this are refused by gRPC with
  // RESOURCE_EXHAUSTED.
  int max_request_bytes = 4 << 20;
  // HTTP/2 streams one connection may have open (SETTINGS); 0: gRPC default.
  int max_concurrent_streams = 0;
  // Fetch streams open at once on the server; more: RESOURCE_EXHAUSTED.
  // 0: unlimited.
  uint32_t max_active_fetches = 0;
  // Targets, rules and pattern sizes per request; over: INVALID_ARGUMENT.
  RequestLimits request_limits;
  // Keepalive enforcement: a client pinging more often than this without
  // data in flight gets GOAWAY (too_many_pings) after a few strikes.
  int min_client_ping_interval_ms = 10000;
  // Server keepalive pings on idle connections to drop dead peers; 0: off.
  int keepalive_time_ms = 60000;
  int keepalive_timeout_ms = 20000;
};

// Thread-safe. Shutdown (or destruction) stops serving; snapshots held by
// streams are released as those streams end.
class WeightServer {
 public:
  // Opens the repository, starts serving. InvalidArgument / Unavailable when
  // the address cannot be bound; NotFound for a missing repository.
  static absl::StatusOr<std::unique_ptr<WeightServer>> Start(ServerOptions options);
  ~WeightServer();

  // The first TCP port of `listen` (0 when it has none).
  int port() const { return port_; }
  // Every address of `listen`, in the order given, as bound: HOST:PORT with
  // the port picked, unix:PATH as given.
  const std::vector<std::string>& listening() const { return listening_; }
  // The side-channel socket paths (one per unix address).
  std::vector<std::string> side_channel_paths() const;
  // Handles waiting to be redeemed (tests).
  size_t pending_local_handles() const;
  // The health-only port; 0 without health_listen.
  int health_port() const { return health_port_; }
  // The metrics endpoint's port; 0 without metrics_listen.
  int metrics_port() const { return exporter_ == nullptr ? 0 : exporter_->port(); }
  ModelStore& store() { return *store_; }
  MetricsRegistry& metrics() { return *metrics_; }

  // Re-reads auth_tokens_file (main calls it on SIGHUP, outside the signal
  // handler). On error the old tokens stay. OK and a no-op without tokens.
  absl::Status ReloadTokens();

  // Health goes NOT_SERVING (watchers are told and their streams end), then
  // RPCs in flight get `grace` to finish before they are cancelled. New
  // calls on the main port are refused from the start; the health port
  // answers (NOT_SERVING) until the main port has drained, then stops.
  // Idempotent.
  void Shutdown(absl::Duration grace);
  // Blocks until Shutdown has completed.
  void Wait();

 private:
  WeightServer() = default;

  // Declared before what uses them, so they are destroyed after it.
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<HandleTable> handles_;  // null without a unix address
  std::unique_ptr<LocalFetchConfig> local_config_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<WeightService> weight_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // health_listen; may be null
  std::unique_ptr<HttpExporter> exporter_;
  // After server_: stopped first, and before handles_ goes.
  std::vector<std::unique_ptr<SideChannelServer>> side_channels_;
  std::vector<std::string> listening_;
  int port_ = 0;
  int health_port_ = 0;
  std::atomic<bool> shut_down_{false};
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_WEIGHT_SERVER_H_
