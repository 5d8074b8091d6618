// gRPC glue of the metrics: a server interceptor that records every RPC
// (method, status code, bytes sent, in flight) into a MetricsRegistry.
// An interceptor rather than code in each handler, so health, reflection and
// calls refused by auth are counted too, and handlers stay translation-only.
#ifndef WEIGHTD_SERVER_METRICS_METRICS_INTERCEPTOR_H_
#define WEIGHTD_SERVER_METRICS_METRICS_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include "server/metrics/registry.h"

namespace weightd {

// `registry` must outlive the server the factory is registered with.
class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(MetricsRegistry* registry) : registry_(registry) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  MetricsRegistry* const registry_;
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_METRICS_METRICS_INTERCEPTOR_H_
