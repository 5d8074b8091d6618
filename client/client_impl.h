// ClientCore's private state, shared by the client library's sources.
#ifndef WEIGHTD_CLIENT_CLIENT_IMPL_H_
#define WEIGHTD_CLIENT_CLIENT_IMPL_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "client/client_core.h"
#include "client/fetch_stream.h"
#include "proto/grpc_status.h"
#include "weightd/v1/weightd.grpc.pb.h"

namespace weightd {

struct ClientCore::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::WeightService::Stub> stub;

  // One unary call, retried on UNAVAILABLE.
  template <typename Request, typename Response, typename Method>
  absl::Status Unary(const ClientOptions& options, Method method, const Request& request,
                     Response* response);
};

template <typename Request, typename Response, typename Method>
absl::Status ClientCore::Impl::Unary(const ClientOptions& options, Method method,
                                     const Request& request, Response* response) {
  return client_internal::WithRetries(options, [&](bool*) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
    return FromGrpcStatus((stub.get()->*method)(&context, request, response));
  });
}

}  // namespace weightd

#endif  // WEIGHTD_CLIENT_CLIENT_IMPL_H_
