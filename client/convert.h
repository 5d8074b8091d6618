// The one place the client translates between weightd.v1 protos and the
// core / public structs (status codes convert in proto/grpc_status.h). Private to
// the client library (not installed).
#ifndef WEIGHTD_CLIENT_CONVERT_H_
#define WEIGHTD_CLIENT_CONVERT_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/client_core.h"
#include "core/match/match.h"
#include "weightd/v1/weightd.pb.h"

namespace weightd::client_internal {

void ToProto(const RuleSet& rules, v1::RuleSet* out);
void ToProto(const MatchOptions& options, v1::MatchOptions* out);
void ToProto(absl::Span<const TensorEntry> target,
             google::protobuf::RepeatedPtrField<v1::TargetTensor>* out);

// DataLoss when the server sent a dtype name or rule this client cannot read.
absl::StatusOr<MatchReport> FromProto(const v1::MatchReport& report);
ModelInfo FromProto(const v1::Model& model);
absl::StatusOr<Manifest> FromProto(const v1::GetManifestResponse& response);

}  // namespace weightd::client_internal

#endif  // WEIGHTD_CLIENT_CONVERT_H_
