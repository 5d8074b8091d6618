// ClientCore's private state, shared by the client library's sources.
#ifndef WEIGHTD_CLIENT_CLIENT_IMPL_H_
#define WEIGHTD_CLIENT_CLIENT_IMPL_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/status.h"
#include "client/client_core.h"
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

}  // namespace weightd

#endif  // WEIGHTD_CLIENT_CLIENT_IMPL_H_
