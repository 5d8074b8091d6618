#include "server/auth/authorizer.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace weightd {
namespace {

constexpr char kAuthorization[] = "authorization";

absl::string_view View(grpc::string_ref ref) { return absl::string_view(ref.data(), ref.size()); }

}  // namespace

absl::string_view BearerToken(absl::string_view header) {
  header = absl::StripAsciiWhitespace(header);
  constexpr absl::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(header.substr(0, kScheme.size()), kScheme)) {
    return {};
  }
  return absl::StripAsciiWhitespace(header.substr(kScheme.size()));
}

grpc::Status Authorizer::Check(const grpc::ServerContextBase& context, Role needed) const {
  if (tokens_ == nullptr) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthorization);
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing \"authorization: Bearer TOKEN\" metadata");
  }
  const absl::string_view token = BearerToken(View(it->second));
  if (token.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the authorization metadata is not \"Bearer TOKEN\"");
  }
  const Role role = tokens_->Find(token);
  if (role == Role::kNone) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown bearer token");
  }
  if (static_cast<int>(role) < static_cast<int>(needed)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("this method needs role ", RoleName(needed),
                                     "; the token has role ", RoleName(role)));
  }
  return grpc::Status::OK;
}

grpc::Status TokenProcessor::Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                                     OutputMetadata* consumed_auth_metadata,
                                     OutputMetadata* response_metadata) {
  auto it = auth_metadata.find(kAuthorization);
  if (it == auth_metadata.end()) return grpc::Status::OK;
  const absl::string_view token = BearerToken(View(it->second));
  const Role role = token.empty() ? Role::kNone : tokens_->Find(token);
  if (role == Role::kNone) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown bearer token");
  }
  // Neither consumed nor recorded as an AuthContext property: that context
  // may be shared by every call of the connection, so properties would pile
  // up; Authorizer::Check reads the header of each call.
  return grpc::Status::OK;
}

}  // namespace weightd
