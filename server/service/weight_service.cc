#include "server/service/weight_service.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "server/cache/fetch_plan.h"
#include "server/service/convert.h"
#include "server/service/fetch_reactor.h"
#include "server/service/local_fetch.h"
#include "proto/grpc_status.h"

namespace weightd {
namespace {

absl::Time Deadline(grpc::CallbackServerContext* context) {
  return absl::FromChrono(context->deadline());
}

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Runs `work` on `pool` and finishes the RPC with its status from there: the
// callback thread returns at once. `work` may use the request and response,
// which gRPC keeps until Finish.
grpc::ServerUnaryReactor* Offload(WorkPool* pool, grpc::CallbackServerContext* context,
                                  std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  pool->Post([reactor, work = std::move(work)] { reactor->Finish(ToGrpcStatus(work())); });
  return reactor;
}

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::Status Authorize(const Authorizer* authorizer, grpc::CallbackServerContext* context,
                       Role needed) {
  return authorizer == nullptr ? grpc::Status::OK : authorizer->Check(*context, needed);
}

// A Fetch refused before it starts (auth, limits).
class RefusedFetch final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit RefusedFetch(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

void HexChecksum(uint64_t value, std::string* out) {
  *out = absl::StrCat(absl::Hex(value, absl::kZeroPad16));
}

absl::Status GetManifest(ModelStore* store, absl::Time deadline,
                         const v1::GetManifestRequest& request,
                         v1::GetManifestResponse* response) {
  absl::StatusOr<std::shared_ptr<const Snapshot>> snapshot =
      store->Acquire(request.model(), request.version(), deadline);
  if (!snapshot.ok()) return snapshot.status();
  absl::StatusOr<std::shared_ptr<const StateDictView>> view = (*snapshot)->View(request.select());
  if (!view.ok()) return view.status();
  response->set_model((*snapshot)->model());
  response->set_version((*snapshot)->version());
  response->set_format((*snapshot)->format());
  response->set_select((*view)->select_path());
  const StateDict& tensors = (*view)->tensors();
  const v1::Checksums checksums = request.checksums();
  for (size_t i = 0; i < tensors.size(); ++i) {
    v1::TensorInfo* info = response->add_tensors();
    info->set_name(tensors[i].first);
    info->set_dtype(std::string(DTypeName(tensors[i].second.dtype)));
    info->mutable_shape()->Add(tensors[i].second.shape.begin(), tensors[i].second.shape.end());
    info->set_nbytes(tensors[i].second.nbytes());
    // Empty: not computed (the proto says so), never a guess.
    if (checksums == v1::CHECKSUMS_KNOWN) {
      if (std::optional<uint64_t> known = (*view)->KnownChecksum(i)) {
        HexChecksum(*known, info->mutable_checksum());
      }
    } else if (checksums != v1::CHECKSUMS_NONE) {
      HexChecksum((*view)->Checksum(i), info->mutable_checksum());
    }
  }
  std::string json = (*snapshot)->Metadata(**view).dump(-1, ' ', false,
                                                        nlohmann::json::error_handler_t::replace);
  response->set_metadata_json(json);
  google::protobuf::util::JsonParseOptions options;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, response->mutable_metadata(),
                                                            options);
  if (!parsed.ok()) {
    // Metadata is informative; a tree Struct cannot hold (a non-object root)
    // is left out rather than failing the manifest.
    response->clear_metadata();
  }
  return absl::OkStatus();
}

absl::Status DoMatch(ModelStore* store, absl::Time deadline, const v1::MatchRequest& request,
                     v1::MatchReport* response) {
  absl::StatusOr<v1::ModelConfig> config = store->Config(request.model());
  if (!config.ok()) return config.status();
  absl::StatusOr<std::vector<TensorEntry>> target = FromProto(request.target());
  if (!target.ok()) return target.status();
  absl::StatusOr<std::shared_ptr<const Snapshot>> snapshot =
      store->Acquire(request.model(), request.version(), deadline);
  if (!snapshot.ok()) return snapshot.status();
  absl::StatusOr<std::shared_ptr<const StateDictView>> view = (*snapshot)->View(request.select());
  if (!view.ok()) return view.status();
  absl::StatusOr<MatchReport> report =
      MatchView(**view, *target, MergeRuleSets(FromProto(config->rules()), FromProto(request.rules())),
                FromProto(request.options()));
  if (!report.ok()) return report.status();
  ToProto(*report, (*snapshot)->version(), response);
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* WeightService::ListModels(grpc::CallbackServerContext* context,
                                                    const v1::ListModelsRequest* request,
                                                    v1::ListModelsResponse* response) {
  grpc::Status allowed = Authorize(options_.authorizer, context, Role::kRead);
  if (!allowed.ok()) return Done(context, allowed);
  for (const ModelStatus& model : store_->List()) ToProto(model, response->add_models());
  ToProto(store_->Skipped(), response->mutable_skipped());
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* WeightService::GetManifest(grpc::CallbackServerContext* context,
                                                     const v1::GetManifestRequest* request,
                                                     v1::GetManifestResponse* response) {
  grpc::Status allowed = Authorize(options_.authorizer, context, Role::kRead);
  if (!allowed.ok()) return Done(context, allowed);
  return Offload(pool_.get(), context, [this, deadline = Deadline(context), request, response] {
    return weightd::GetManifest(store_, deadline, *request, response);
  });
}

grpc::ServerUnaryReactor* WeightService::Match(grpc::CallbackServerContext* context,
                                               const v1::MatchRequest* request,
                                               v1::MatchReport* response) {
  grpc::Status allowed = Authorize(options_.authorizer, context, Role::kRead);
  if (!allowed.ok()) return Done(context, allowed);
  absl::Status within = CheckMatchRequest(*request, options_.limits);
  if (!within.ok()) return Done(context, within);
  return Offload(pool_.get(), context, [this, deadline = Deadline(context), request, response] {
    return DoMatch(store_, deadline, *request, response);
  });
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* WeightService::Fetch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  grpc::Status allowed = Authorize(options_.authorizer, context, Role::kRead);
  if (!allowed.ok()) return new RefusedFetch(allowed);
  std::shared_ptr<std::atomic<uint32_t>> active = active_fetches_;
  const uint32_t before = active->fetch_add(1);
  if (options_.max_active_fetches != 0 && before >= options_.max_active_fetches) {
    active->fetch_sub(1);
    return new RefusedFetch(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("this server already streams ", before, " Fetch calls, its limit "
                     "(--max_active_fetches); retry later or on another replica")));
  }
  return new FetchReactor(store_, pool_.get(), context, request, &options_.limits,
                          [active] { active->fetch_sub(1); });
}

grpc::ServerUnaryReactor* WeightService::LocalFetch(grpc::CallbackServerContext* context,
                                                    const v1::LocalFetchRequest* request,
                                                    v1::LocalFetchResponse* response) {
  // The token first: a caller without the read role learns nothing, not
  // even whether this connection could have had descriptors.
  grpc::Status allowed = Authorize(options_.authorizer, context, Role::kRead);
  if (!allowed.ok()) return Done(context, allowed);
  static const LocalFetchConfig kNoLocal;
  const LocalFetchConfig& local = options_.local == nullptr ? kNoLocal : *options_.local;
  absl::Status peer = CheckLocalPeer(context->peer(), local);
  if (!peer.ok()) return Done(context, peer);
  absl::Status within = CheckFetchRequest(request->fetch(), options_.limits);
  if (!within.ok()) return Done(context, within);
  return Offload(pool_.get(), context,
                 [this, &local, deadline = Deadline(context), request, response] {
                   return DoLocalFetch(store_, local, deadline, *request, response);
                 });
}

grpc::ServerUnaryReactor* AdminService::LoadModel(grpc::CallbackServerContext* context,
                                                  const v1::LoadModelRequest* request,
                                                  v1::LoadModelResponse* response) {
  grpc::Status allowed = Authorize(authorizer_, context, Role::kAdmin);
  if (!allowed.ok()) return Done(context, allowed);
  return Offload(pool_.get(), context, [this, request, response] {
    absl::StatusOr<ModelStatus> status = store_->Load(request->model(), request->version());
    if (status.ok()) ToProto(*status, response->mutable_model());
    return status.status();
  });
}

grpc::ServerUnaryReactor* AdminService::UnloadModel(grpc::CallbackServerContext* context,
                                                    const v1::UnloadModelRequest* request,
                                                    v1::UnloadModelResponse* response) {
  grpc::Status allowed = Authorize(authorizer_, context, Role::kAdmin);
  if (!allowed.ok()) return Done(context, allowed);
  return Done(context, store_->Unload(request->model(), request->version()));
}

grpc::ServerUnaryReactor* AdminService::Rescan(grpc::CallbackServerContext* context,
                                               const v1::RescanRequest* request,
                                               v1::RescanResponse* response) {
  grpc::Status allowed = Authorize(authorizer_, context, Role::kAdmin);
  if (!allowed.ok()) return Done(context, allowed);
  return Offload(pool_.get(), context, [this, response] {
    absl::StatusOr<std::vector<ModelStatus>> models = store_->Rescan();
    if (models.ok()) {
      for (const ModelStatus& model : *models) ToProto(model, response->add_models());
      ToProto(store_->Skipped(), response->mutable_skipped());
    }
    return models.status();
  });
}

}  // namespace weightd
