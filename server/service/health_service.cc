#include "server/service/health_service.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace weightd {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream: sends the current status, then each change. At most one
// write is in flight; a change during a write is sent when it completes.
class HealthService::WatchReactor final : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  WatchReactor(HealthService* service, std::string name)
      : service_(service), name_(std::move(name)) {}

  // Called with service_->mu_ held, so the reactor cannot be deleted meanwhile.
  void Update(ServingStatus status, bool finish) {
    absl::MutexLock lock(&mu_);
    pending_ = status;
    finish_requested_ = finish_requested_ || finish;
    MaybeWriteLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    MaybeWriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    service_->Unregister(this);
    // Finish is called under mu_; wait for that caller to release it before
    // freeing the mutex (see FetchReactor::OnDone).
    { absl::MutexLock lock(&mu_); }
    delete this;
  }

 private:
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (cancelled_) {
      FinishLocked(grpc::Status::CANCELLED);
      return;
    }
    if (!sent_any_ || pending_ != last_sent_) {
      response_.set_status(pending_);
      last_sent_ = pending_;
      sent_any_ = true;
      writing_ = true;
      StartWrite(&response_);
      return;
    }
    if (finish_requested_) FinishLocked(grpc::Status::OK);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  HealthService* const service_;
  const std::string name_;
  absl::Mutex mu_;
  HealthCheckResponse response_ ABSL_GUARDED_BY(mu_);
  ServingStatus pending_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  ServingStatus last_sent_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;

 public:
  const std::string& name() const { return name_; }
};

HealthService::ServingStatus HealthService::StatusOf(const std::string& service) const {
  bool shutting_down;
  {
    absl::MutexLock lock(&mu_);
    shutting_down = shutting_down_;
  }
  if (service.empty() || service == "weightd.v1.WeightService" ||
      service == "weightd.v1.AdminService") {
    return shutting_down ? HealthCheckResponse::NOT_SERVING : HealthCheckResponse::SERVING;
  }
  if (!absl::StartsWith(service, kModelHealthPrefix)) return HealthCheckResponse::SERVICE_UNKNOWN;
  absl::StatusOr<ModelStatus> model =
      store_->Status(absl::string_view(service).substr(strlen(kModelHealthPrefix)));
  if (!model.ok()) return HealthCheckResponse::SERVICE_UNKNOWN;
  if (shutting_down) return HealthCheckResponse::NOT_SERVING;
  for (const VersionStatus& v : model->versions) {
    if (v.state != VersionState::kFailed) return HealthCheckResponse::SERVING;
  }
  return HealthCheckResponse::NOT_SERVING;
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const HealthCheckRequest* request,
                                               HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ServingStatus status = StatusOf(request->service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("unknown service \"", request->service(), "\"")));
  } else {
    response->set_status(status);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  auto* reactor = new WatchReactor(this, request->service());
  ServingStatus status = StatusOf(request->service());
  absl::MutexLock lock(&mu_);
  watchers_.insert(reactor);
  reactor->Update(status, shutting_down_);
  return reactor;
}

void HealthService::Refresh() {
  std::vector<std::string> names;
  {
    absl::MutexLock lock(&mu_);
    for (WatchReactor* w : watchers_) names.push_back(w->name());
  }
  // Statuses are computed unlocked (they ask the store), then delivered to
  // the watchers still registered.
  absl::flat_hash_map<std::string, ServingStatus> statuses;
  for (const std::string& name : names) statuses.emplace(name, StatusOf(name));
  absl::MutexLock lock(&mu_);
  for (WatchReactor* w : watchers_) {
    auto it = statuses.find(w->name());
    if (it != statuses.end()) w->Update(it->second, shutting_down_);
  }
}

void HealthService::BeginShutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  for (WatchReactor* w : watchers_) w->Update(HealthCheckResponse::NOT_SERVING, true);
}

void HealthService::Unregister(WatchReactor* reactor) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(reactor);
}

}  // namespace weightd
