#include "server/service/convert.h"

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

v1::ModelState ToProto(VersionState state) {
  switch (state) {
    case VersionState::kUnloaded:
      return v1::MODEL_STATE_UNLOADED;
    case VersionState::kLoading:
      return v1::MODEL_STATE_LOADING;
    case VersionState::kReady:
      return v1::MODEL_STATE_READY;
    case VersionState::kFailed:
      return v1::MODEL_STATE_FAILED;
  }
  return v1::MODEL_STATE_UNSPECIFIED;
}

template <typename Repeated>
void SetShape(const std::vector<int64_t>& shape, Repeated* out) {
  out->Add(shape.begin(), shape.end());
}

}  // namespace

void ToProto(const ModelStatus& status, v1::Model* out) {
  out->set_name(status.name);
  for (const VersionStatus& v : status.versions) {
    v1::ModelVersion* pv = out->add_versions();
    pv->set_version(v.version);
    pv->set_state(ToProto(v.state));
    pv->set_reason(v.reason);
    pv->set_format(v.format);
    pv->set_path(v.path);
    pv->set_tensor_count(v.tensor_count);
    pv->set_bytes(v.bytes);
    pv->set_cache_tier(v.cache_tier);
    pv->set_cache_note(v.cache_note);
    pv->set_select(v.select);
  }
}

void ToProto(const std::vector<SkippedEntry>& skipped,
             google::protobuf::RepeatedPtrField<v1::SkippedEntry>* out) {
  for (const SkippedEntry& entry : skipped) {
    v1::SkippedEntry* e = out->Add();
    e->set_path(entry.path);
    e->set_reason(entry.reason);
  }
}

void ToProto(const MatchReport& report, int64_t version, v1::MatchReport* out) {
  out->set_version(version);
  for (const MatchedPair& m : report.matched) {
    v1::MatchedTensor* pm = out->add_matched();
    pm->set_source(m.source);
    pm->set_target(m.target);
    SetShape(m.shape, pm->mutable_shape());
    pm->set_source_dtype(std::string(DTypeName(m.source_dtype)));
    pm->set_target_dtype(std::string(DTypeName(m.target_dtype)));
    pm->set_nbytes(m.bytes);
  }
  for (const std::string& k : report.missing_keys) out->add_missing_keys(k);
  for (const std::string& k : report.unexpected_keys) out->add_unexpected_keys(k);
  for (const ShapeMismatch& m : report.mismatched) {
    v1::MismatchedTensor* pm = out->add_mismatched();
    pm->set_key(m.key);
    pm->set_source(m.source);
    SetShape(m.source_shape, pm->mutable_source_shape());
    SetShape(m.target_shape, pm->mutable_target_shape());
  }
  for (const Rule& r : report.inferred_rules) out->add_inferred_rules(FormatRule(r));
  out->set_bytes(report.bytes);
  out->set_ok(report.ok());
  for (const std::string& e : report.errors) out->add_errors(e);
}

RuleSet FromProto(const v1::RuleSet& rules) {
  RuleSet out;
  for (const v1::Rule& r : rules.rules()) {
    switch (r.kind_case()) {
      case v1::Rule::kStripPrefix:
        out.rules.push_back(StripPrefix(r.strip_prefix()));
        break;
      case v1::Rule::kAddPrefix:
        out.rules.push_back(AddPrefix(r.add_prefix()));
        break;
      case v1::Rule::kRegex:
        out.rules.push_back(RegexRule(r.regex().pattern(), r.regex().replacement()));
        break;
      case v1::Rule::kRename:
        out.rules.push_back(Rename(r.rename().from(), r.rename().to()));
        break;
      case v1::Rule::KIND_NOT_SET:
        break;  // an empty rule does nothing
    }
  }
  out.include.assign(rules.include().begin(), rules.include().end());
  out.exclude.assign(rules.exclude().begin(), rules.exclude().end());
  out.ignore_missing.assign(rules.ignore_missing().begin(), rules.ignore_missing().end());
  out.ignore_unexpected.assign(rules.ignore_unexpected().begin(),
                               rules.ignore_unexpected().end());
  out.auto_prefix = rules.auto_prefix();
  return out;
}

MatchOptions FromProto(const v1::MatchOptions& options) {
  MatchOptions out;
  out.on_shape_mismatch = options.on_shape_mismatch() == v1::SHAPE_POLICY_SKIP
                              ? ShapePolicy::kSkip
                              : ShapePolicy::kError;
  switch (options.strictness()) {
    case v1::STRICTNESS_STRICT:
      out.strict = true;
      break;
    case v1::STRICTNESS_LENIENT:
      out.strict = false;
      break;
    default:
      // Requests written before `strictness` existed (grpcurl, old clients).
      out.strict = options.strict();
      break;
  }
  out.allow_empty = options.allow_empty();
  return out;
}

absl::StatusOr<std::vector<TensorEntry>> FromProto(
    const google::protobuf::RepeatedPtrField<v1::TargetTensor>& target) {
  std::vector<TensorEntry> out;
  out.reserve(target.size());
  for (const v1::TargetTensor& t : target) {
    TensorEntry& e = out.emplace_back();
    e.name = t.name();
    if (t.dtype().empty()) {
      e.dtype = DType::kFloat32;
    } else {
      absl::StatusOr<DType> dtype = ParseDType(t.dtype());
      if (!dtype.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("target \"", t.name(), "\": ", dtype.status().message()));
      }
      e.dtype = *dtype;
    }
    e.shape.assign(t.shape().begin(), t.shape().end());
  }
  return out;
}

absl::StatusOr<FetchSpec> FromProto(const v1::FetchRequest& request,
                                    const v1::ModelConfig& config) {
  FetchSpec spec;
  spec.keys.assign(request.keys().begin(), request.keys().end());
  WEIGHTD_ASSIGN_OR_RETURN(spec.target, FromProto(request.target()));
  spec.rules = MergeRuleSets(FromProto(config.rules()), FromProto(request.rules()));
  spec.options = FromProto(request.options());
  if (!request.cast_dtype().empty()) {
    absl::StatusOr<DType> dtype = ParseDType(request.cast_dtype());
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cast_dtype: ", dtype.status().message()));
    }
    spec.cast = *dtype;
  }
  return spec;
}

}  // namespace weightd
