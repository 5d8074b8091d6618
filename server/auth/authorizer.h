// Bearer-token authorization at the gRPC edge.
//
// Where the check happens, and why: gRPC runs an AuthMetadataProcessor only
// on secure (TLS) ports, and a server interceptor cannot end a call with a
// status of its own. So:
//  - on TLS ports the TokenProcessor (an AuthMetadataProcessor) rejects a
//    call with an unknown token with UNAUTHENTICATED before any handler runs;
//  - every handler of WeightService (role read) and AdminService (role
//    admin) calls Authorizer::Check first, which reads the `authorization:
//    Bearer TOKEN` header itself. That covers plaintext ports (tokens behind
//    a TLS-terminating proxy or mesh) and does not depend on whether gRPC
//    keeps AuthContext properties per call or per connection.
// Health and reflection never call Check: probes need no token.
#ifndef WEIGHTD_SERVER_AUTH_AUTHORIZER_H_
#define WEIGHTD_SERVER_AUTH_AUTHORIZER_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_metadata_processor.h>

#include <memory>

#include "server/auth/token_store.h"

namespace weightd {

// Thread-safe. `tokens` (may be null: no token auth, every call passes) must
// outlive the authorizer.
class Authorizer {
 public:
  explicit Authorizer(const TokenStore* tokens) : tokens_(tokens) {}

  // OK when no tokens are configured or the call's bearer token has a role
  // at least `needed`; UNAUTHENTICATED without a known token,
  // PERMISSION_DENIED when the role is too low.
  grpc::Status Check(const grpc::ServerContextBase& context, Role needed) const;

  bool enabled() const { return tokens_ != nullptr; }
  const TokenStore* tokens() const { return tokens_; }

 private:
  const TokenStore* const tokens_;
};

// The token from an `authorization` header value ("Bearer TOKEN", scheme
// case-insensitive); empty when it is not a bearer token.
absl::string_view BearerToken(absl::string_view header);

// For TLS ports: rejects calls whose bearer token is unknown. Calls without a
// token pass here; Check decides per method.
class TokenProcessor final : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenProcessor(const TokenStore* tokens) : tokens_(tokens) {}

  // A map lookup: cheap enough for gRPC's own thread.
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  const TokenStore* const tokens_;
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_AUTH_AUTHORIZER_H_
