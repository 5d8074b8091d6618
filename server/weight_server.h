// The weightd server: model store + gRPC services (WeightService,
// AdminService, grpc.health.v1.Health, server reflection) on one port.
#ifndef WEIGHTD_SERVER_WEIGHT_SERVER_H_
#define WEIGHTD_SERVER_WEIGHT_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/cache/model_store.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace weightd {

class HealthService;
class WeightService;
class AdminService;

struct ServerOptions {
  std::string repository;
  // HOST:PORT; port 0 picks a free port (see port()).
  std::string listen = "127.0.0.1:0";
  uint64_t host_cache_bytes = 0;  // 0: unlimited
  bool preload = false;
};

// Thread-safe. Shutdown (or destruction) stops serving; snapshots held by
// streams are released as those streams end.
class WeightServer {
 public:
  // Opens the repository, starts serving. InvalidArgument / Unavailable when
  // the address cannot be bound; NotFound for a missing repository.
  static absl::StatusOr<std::unique_ptr<WeightServer>> Start(ServerOptions options);
  ~WeightServer();

  int port() const { return port_; }
  ModelStore& store() { return *store_; }

  // Health goes NOT_SERVING (watchers are told and their streams end), then
  // RPCs in flight get `grace` to finish before they are cancelled.
  // Idempotent.
  void Shutdown(absl::Duration grace);
  // Blocks until Shutdown has completed.
  void Wait();

 private:
  WeightServer() = default;

  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<WeightService> weight_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> shut_down_{false};
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_WEIGHT_SERVER_H_
