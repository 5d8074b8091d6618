// weightd.v1.WeightService over the callback API: proto <-> core
// translation only; the logic lives in server/cache and core/match.
#ifndef WEIGHTD_SERVER_SERVICE_WEIGHT_SERVICE_H_
#define WEIGHTD_SERVER_SERVICE_WEIGHT_SERVICE_H_

#include "server/cache/model_store.h"
#include "weightd/v1/weightd.grpc.pb.h"

namespace weightd {

using WeightServiceBase = v1::WeightService::WithCallbackMethod_ListModels<
    v1::WeightService::WithCallbackMethod_GetManifest<v1::WeightService::WithCallbackMethod_Match<
        v1::WeightService::WithRawCallbackMethod_Fetch<v1::WeightService::Service>>>>;

// Thread-safe. `store` must outlive the service. Fetch is a raw method so
// tensor bytes go out as slices of the cached memory (see fetch_reactor.h).
class WeightService final : public WeightServiceBase {
 public:
  explicit WeightService(ModelStore* store) : store_(store) {}

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

 private:
  ModelStore* const store_;
};

// weightd.v1.AdminService: LoadModel, UnloadModel, Rescan.
class AdminService final : public v1::AdminService::CallbackService {
 public:
  explicit AdminService(ModelStore* store) : store_(store) {}

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
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_WEIGHT_SERVICE_H_
