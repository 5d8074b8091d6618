// grpc.health.v1.Health, implemented over the generated code (not gRPC's
// built-in service, which reflection cannot describe; DESIGN.md section 4).
//
// Service names:
//   ""                                   the server as a whole
//   "weightd.v1.WeightService", "weightd.v1.AdminService"   same as ""
//   "weightd.v1.WeightService/<model>"   one model: SERVING when some version
//                                        of it is loaded or loadable (not
//                                        failed), NOT_SERVING when all failed
// Everything is NOT_SERVING once shutdown has begun. Check on an unknown name
// is NOT_FOUND; Watch on one sends SERVICE_UNKNOWN and keeps watching.
#ifndef WEIGHTD_SERVER_SERVICE_HEALTH_SERVICE_H_
#define WEIGHTD_SERVER_SERVICE_HEALTH_SERVICE_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/cache/model_store.h"

namespace weightd {

inline constexpr char kModelHealthPrefix[] = "weightd.v1.WeightService/";

// Thread-safe. `store` must outlive the service.
class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  explicit HealthService(ModelStore* store) : store_(store) {}

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

  // Recomputes every watched status and sends the changes (the store's
  // listener calls this).
  void Refresh();
  // Everything NOT_SERVING; watch streams get that, then end.
  void BeginShutdown();

  // The status of `service`; SERVICE_UNKNOWN for an unknown name.
  ServingStatus StatusOf(const std::string& service) const;

 private:
  class WatchReactor;
  friend class WatchReactor;
  void Unregister(WatchReactor* reactor);

  ModelStore* const store_;
  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<WatchReactor*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_HEALTH_SERVICE_H_
