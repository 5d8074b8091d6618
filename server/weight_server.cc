#include "server/weight_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "server/service/health_service.h"
#include "server/service/weight_service.h"

namespace weightd {

absl::StatusOr<std::unique_ptr<WeightServer>> WeightServer::Start(ServerOptions options) {
  StoreOptions store_options;
  store_options.repository = options.repository;
  store_options.host_cache_bytes = options.host_cache_bytes;
  store_options.preload = options.preload;
  absl::StatusOr<std::unique_ptr<ModelStore>> store = ModelStore::Open(store_options);
  if (!store.ok()) return store.status();

  std::unique_ptr<WeightServer> server(new WeightServer());
  server->store_ = *std::move(store);
  server->health_ = std::make_unique<HealthService>(server->store_.get());
  server->weight_service_ = std::make_unique<WeightService>(server->store_.get());
  server->admin_service_ = std::make_unique<AdminService>(server->store_.get());
  HealthService* health = server->health_.get();
  server->store_->SetListener([health] { health->Refresh(); });

  // Once per process; registers the reflection service with every builder.
  static const bool reflection = [] {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    return true;
  }();
  (void)reflection;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(server->weight_service_.get());
  builder.RegisterService(server->admin_service_.get());
  builder.RegisterService(server->health_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    server->store_->SetListener(nullptr);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  return server;
}

WeightServer::~WeightServer() {
  Shutdown(absl::ZeroDuration());
  store_->SetListener(nullptr);
}

void WeightServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr || shut_down_.exchange(true)) return;
  health_->BeginShutdown();
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(grace));
}

void WeightServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace weightd
