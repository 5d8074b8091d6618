#include "client/convert.h"

#include <google/protobuf/util/json_util.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace weightd::client_internal {
namespace {


template <typename Repeated>
std::vector<int64_t> Shape(const Repeated& shape) {
  return std::vector<int64_t>(shape.begin(), shape.end());
}

absl::StatusOr<DType> ServerDType(const std::string& name, const std::string& tensor) {
  absl::StatusOr<DType> dtype = ParseDType(name);
  if (!dtype.ok()) {
    return absl::DataLossError(
        absl::StrCat("server sent unknown dtype \"", name, "\" for tensor ", tensor));
  }
  return *dtype;
}

std::string StateName(v1::ModelState state) {
  switch (state) {
    case v1::MODEL_STATE_UNLOADED:
      return "unloaded";
    case v1::MODEL_STATE_LOADING:
      return "loading";
    case v1::MODEL_STATE_READY:
      return "ready";
    case v1::MODEL_STATE_FAILED:
      return "failed";
    default:
      return "unknown";
  }
}

}  // namespace

void ToProto(const RuleSet& rules, v1::RuleSet* out) {
  for (const Rule& r : rules.rules) {
    v1::Rule* pr = out->add_rules();
    switch (r.kind) {
      case Rule::Kind::kStripPrefix:
        pr->set_strip_prefix(r.pattern);
        break;
      case Rule::Kind::kAddPrefix:
        pr->set_add_prefix(r.pattern);
        break;
      case Rule::Kind::kRegex:
        pr->mutable_regex()->set_pattern(r.pattern);
        pr->mutable_regex()->set_replacement(r.replacement);
        break;
      case Rule::Kind::kRename:
        pr->mutable_rename()->set_from(r.pattern);
        pr->mutable_rename()->set_to(r.replacement);
        break;
    }
  }
  for (const std::string& p : rules.include) out->add_include(p);
  for (const std::string& p : rules.exclude) out->add_exclude(p);
  for (const std::string& p : rules.ignore_missing) out->add_ignore_missing(p);
  for (const std::string& p : rules.ignore_unexpected) out->add_ignore_unexpected(p);
  out->set_auto_prefix(rules.auto_prefix);
}

void ToProto(const MatchOptions& options, v1::MatchOptions* out) {
  out->set_on_shape_mismatch(options.on_shape_mismatch == ShapePolicy::kSkip
                                 ? v1::SHAPE_POLICY_SKIP
                                 : v1::SHAPE_POLICY_ERROR);
  // Always explicit: UNSPECIFIED means the legacy bool, whose proto3
  // default (false) is not PyTorch's. The bool too, for older servers.
  out->set_strictness(options.strict ? v1::STRICTNESS_STRICT : v1::STRICTNESS_LENIENT);
  out->set_strict(options.strict);
  out->set_allow_empty(options.allow_empty);
}

void ToProto(absl::Span<const TensorEntry> target,
             google::protobuf::RepeatedPtrField<v1::TargetTensor>* out) {
  for (const TensorEntry& e : target) {
    v1::TargetTensor* t = out->Add();
    t->set_name(e.name);
    t->set_dtype(std::string(DTypeName(e.dtype)));
    t->mutable_shape()->Add(e.shape.begin(), e.shape.end());
  }
}

absl::StatusOr<MatchReport> FromProto(const v1::MatchReport& report) {
  MatchReport out;
  for (const v1::MatchedTensor& m : report.matched()) {
    MatchedPair pair;
    pair.source = m.source();
    pair.target = m.target();
    pair.shape = Shape(m.shape());
    WEIGHTD_ASSIGN_OR_RETURN(pair.source_dtype, ServerDType(m.source_dtype(), m.source()));
    WEIGHTD_ASSIGN_OR_RETURN(pair.target_dtype, ServerDType(m.target_dtype(), m.target()));
    pair.bytes = m.nbytes();
    out.matched.push_back(std::move(pair));
  }
  out.missing_keys.assign(report.missing_keys().begin(), report.missing_keys().end());
  out.unexpected_keys.assign(report.unexpected_keys().begin(), report.unexpected_keys().end());
  for (const v1::MismatchedTensor& m : report.mismatched()) {
    out.mismatched.push_back(
        {m.key(), m.source(), Shape(m.source_shape()), Shape(m.target_shape())});
  }
  for (const std::string& text : report.inferred_rules()) {
    RuleSet parsed;
    absl::Status status = ParseRuleItem(text, &parsed);
    if (!status.ok() || parsed.rules.size() != 1) {
      return absl::DataLossError(
          absl::StrCat("server sent an inferred rule this client cannot read: \"", text, "\""));
    }
    out.inferred_rules.push_back(parsed.rules[0]);
  }
  out.bytes = report.bytes();
  out.errors.assign(report.errors().begin(), report.errors().end());
  if (!report.ok() && out.errors.empty()) out.errors.push_back("the server rejected the load");
  return out;
}

ModelInfo FromProto(const v1::Model& model) {
  ModelInfo out;
  out.name = model.name();
  for (const v1::ModelVersion& v : model.versions()) {
    ModelVersionInfo info;
    info.version = v.version();
    info.state = StateName(v.state());
    info.reason = v.reason();
    info.format = v.format();
    info.path = v.path();
    info.tensor_count = v.tensor_count();
    info.bytes = v.bytes();
    info.cache_tier = v.cache_tier();
    info.select = v.select();
    info.cache_note = v.cache_note();
    out.versions.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<Manifest> FromProto(const v1::GetManifestResponse& response) {
  Manifest out;
  out.model = response.model();
  out.version = response.version();
  out.format = response.format();
  out.select = response.select();
  for (const v1::TensorInfo& t : response.tensors()) {
    ManifestTensor tensor;
    tensor.name = t.name();
    WEIGHTD_ASSIGN_OR_RETURN(tensor.dtype, ServerDType(t.dtype(), t.name()));
    tensor.shape = Shape(t.shape());
    tensor.nbytes = t.nbytes();
    tensor.checksum = t.checksum();
    out.tensors.push_back(std::move(tensor));
  }
  out.metadata_json = "{}";
  if (!response.metadata_json().empty()) {
    // In checkpoint order, floats as floats; the Struct has neither.
    out.metadata_json = response.metadata_json();
  } else if (response.has_metadata()) {
    std::string json;
    if (google::protobuf::util::MessageToJsonString(response.metadata(), &json).ok()) {
      out.metadata_json = std::move(json);
    }
  }
  return out;
}

}  // namespace weightd::client_internal
