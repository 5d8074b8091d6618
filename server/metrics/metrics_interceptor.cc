#include "server/metrics/metrics_interceptor.h"

#include <grpcpp/grpcpp.h>

#include <string>

#include "server/metrics/weightd_metrics.h"

namespace weightd {
namespace {

using grpc::experimental::InterceptionHookPoints;

// gRPC's canonical code names, as grpcurl and the gRPC docs spell them.
const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "UNKNOWN";
}

// One per RPC; gRPC destroys it when the RPC is done.
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(MetricsRegistry* registry, const char* method)
      : registry_(registry), method_({{"method", method == nullptr ? "unknown" : method}}) {
    registry_->Add(metrics::kActiveStreams, method_, 1);
  }

  ~MetricsInterceptor() override {
    registry_->Add(metrics::kActiveStreams, method_, -1);
    Labels labels = method_;
    labels.emplace_back("code", CodeName(code_));
    registry_->Add(metrics::kRequests, labels, 1);
    if (code_ != grpc::StatusCode::OK) registry_->Add(metrics::kErrors, labels, 1);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      // Serializes now what gRPC would serialize next anyway; for the raw
      // Fetch method the message already is a ByteBuffer of slices.
      if (grpc::ByteBuffer* buffer = methods->GetSerializedSendMessage()) {
        // Recorded per message, so a scrape during a long stream sees it.
        registry_->Add(metrics::kSentBytes, method_, buffer->Length());
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      code_ = methods->GetSendStatus().error_code();
    }
    methods->Proceed();
  }

 private:
  MetricsRegistry* const registry_;
  const Labels method_;
  // Stays CANCELLED when the RPC ends without the server sending a status.
  grpc::StatusCode code_ = grpc::StatusCode::CANCELLED;
};

}  // namespace

grpc::experimental::Interceptor* MetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new MetricsInterceptor(registry_, info->method());
}

}  // namespace weightd
