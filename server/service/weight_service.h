// weightd.v1.WeightService over the callback API: proto <-> core
// translation only; the logic lives in server/cache and core/match.
#ifndef WEIGHTD_SERVER_SERVICE_WEIGHT_SERVICE_H_
#define WEIGHTD_SERVER_SERVICE_WEIGHT_SERVICE_H_

#include <atomic>
#include <memory>

#include "server/auth/authorizer.h"
#include "server/cache/model_store.h"
#include "server/local/local_handoff.h"
#include "server/service/request_limits.h"
#include "server/service/work_pool.h"
#include "weightd/v1/weightd.grpc.pb.h"

namespace weightd {

using WeightServiceBase = v1::WeightService::WithCallbackMethod_ListModels<
    v1::WeightService::WithCallbackMethod_GetManifest<v1::WeightService::WithCallbackMethod_Match<
        v1::WeightService::WithRawCallbackMethod_Fetch<
            v1::WeightService::WithCallbackMethod_LocalFetch<v1::WeightService::Service>>>>>;

struct WeightServiceOptions {
  // Null: no token check. Every method needs role read.
  const Authorizer* authorizer = nullptr;
  RequestLimits limits;
  // Fetch streams open at once, server-wide; past it Fetch answers
  // RESOURCE_EXHAUSTED. 0: unlimited.
  uint32_t max_active_fetches = 0;
  // Threads for the parts of GetManifest, Match and Fetch that may block on
  // a checkpoint load (see work_pool.h); loads of distinct models run in
  // parallel up to this many.
  int blocking_threads = 8;
  // The same-node path; its `handles` null: LocalFetch is refused
  // (FAILED_PRECONDITION). Must outlive the service.
  const LocalFetchConfig* local = nullptr;
};

// Thread-safe. `store` (and options.authorizer) must outlive the service.
// Fetch is a raw method so tensor bytes go out as slices of the cached memory
// (see fetch_reactor.h).
class WeightService final : public WeightServiceBase {
 public:
  explicit WeightService(ModelStore* store, WeightServiceOptions options = {})
      : store_(store),
        options_(options),
        pool_(std::make_unique<WorkPool>(options.blocking_threads)) {}

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetManifest(grpc::CallbackServerContext* context,
                                        const v1::GetManifestRequest* request,
                                        v1::GetManifestResponse* response) override;
  grpc::ServerUnaryReactor* Match(grpc::CallbackServerContext* context,
                                  const v1::MatchRequest* request,
                                  v1::MatchReport* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Fetch(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request) override;
  // Answered on Unix-socket connections only (server/service/local_fetch.h).
  grpc::ServerUnaryReactor* LocalFetch(grpc::CallbackServerContext* context,
                                       const v1::LocalFetchRequest* request,
                                       v1::LocalFetchResponse* response) override;

 private:
  ModelStore* const store_;
  const WeightServiceOptions options_;
  // Destroyed (joined) with the service, after the gRPC server that posts to
  // it has shut down.
  std::unique_ptr<WorkPool> pool_;
  // Shared with the reactors' on_done, which may run after the service is
  // gone only if the server outlived it (it does not), but cheap to be safe.
  std::shared_ptr<std::atomic<uint32_t>> active_fetches_ =
      std::make_shared<std::atomic<uint32_t>>(0);
};

// weightd.v1.AdminService: LoadModel, UnloadModel, Rescan. Every method
// needs role admin when `authorizer` is set.
class AdminService final : public v1::AdminService::CallbackService {
 public:
  explicit AdminService(ModelStore* store, const Authorizer* authorizer = nullptr)
      : store_(store), authorizer_(authorizer), pool_(std::make_unique<WorkPool>(2)) {}

  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context,
                                      const v1::LoadModelRequest* request,
                                      v1::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context,
                                        const v1::UnloadModelRequest* request,
                                        v1::UnloadModelResponse* response) override;
  grpc::ServerUnaryReactor* Rescan(grpc::CallbackServerContext* context,
                                   const v1::RescanRequest* request,
                                   v1::RescanResponse* response) override;

 private:
  ModelStore* const store_;
  const Authorizer* const authorizer_;
  std::unique_ptr<WorkPool> pool_;  // LoadModel and Rescan load checkpoints
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_WEIGHT_SERVICE_H_
