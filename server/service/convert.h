// Translation between the weightd.v1 protos and the core / cache structs.
#ifndef WEIGHTD_SERVER_SERVICE_CONVERT_H_
#define WEIGHTD_SERVER_SERVICE_CONVERT_H_

#include <vector>

#include "absl/status/statusor.h"
#include "core/match/match.h"
#include "server/cache/fetch_plan.h"
#include "server/cache/model_store.h"
#include "weightd/v1/weightd.pb.h"

namespace weightd {

void ToProto(const ModelStatus& status, v1::Model* out);
void ToProto(const std::vector<SkippedEntry>& skipped,
             google::protobuf::RepeatedPtrField<v1::SkippedEntry>* out);
void ToProto(const MatchReport& report, int64_t version, v1::MatchReport* out);

RuleSet FromProto(const v1::RuleSet& rules);
MatchOptions FromProto(const v1::MatchOptions& options);
// InvalidArgument for an unknown dtype name (naming the tensor).
absl::StatusOr<std::vector<TensorEntry>> FromProto(
    const google::protobuf::RepeatedPtrField<v1::TargetTensor>& target);
// The request's spec, with the model config's rules applied first.
absl::StatusOr<FetchSpec> FromProto(const v1::FetchRequest& request,
                                    const v1::ModelConfig& config);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_CONVERT_H_
