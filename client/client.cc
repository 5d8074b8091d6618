// weightd::Client: channel, unary calls and Fetch. Load is in load.cc.
#include "client/client.h"

#include <grpcpp/grpcpp.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client_impl.h"
#include "proto/grpc_status.h"
#include "client/convert.h"
#include "client/fetch_stream.h"
#include "core/util/status_macros.h"

namespace weightd {

using client_internal::FromProto;
using client_internal::RunFetch;
using client_internal::ToProto;
using client_internal::WithRetries;

RuleSet MatchSpec::rule_set() const {
  RuleSet out;
  out.rules = rules;
  out.include = include;
  out.exclude = exclude;
  out.ignore_missing = ignore_missing;
  out.ignore_unexpected = ignore_unexpected;
  out.auto_prefix = auto_prefix;
  return out;
}

void MatchSpec::set_rule_set(const RuleSet& rule_set) {
  rules = rule_set.rules;
  include = rule_set.include;
  exclude = rule_set.exclude;
  ignore_missing = rule_set.ignore_missing;
  ignore_unexpected = rule_set.ignore_unexpected;
  auto_prefix = rule_set.auto_prefix;
}

MatchOptions MatchSpec::match_options() const {
  MatchOptions out;
  out.on_shape_mismatch = on_shape_mismatch;
  out.strict = strict;
  return out;
}

namespace {

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Adds the bearer token to every call's metadata. An interceptor rather than
// call credentials: gRPC sends call credentials only over TLS, and weightd
// also checks tokens on plaintext ports.
class TokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const header_;
};

class TokenInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::string token) : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new TokenInterceptor(&header_);
  }

 private:
  const std::string header_;
};

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const ClientOptions& options) {
  if (options.tls_ca.empty() && options.tls_cert.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.tls_ca.empty()) ssl.pem_root_certs = ReadFileOrEmpty(options.tls_ca);
  if (!options.tls_cert.empty()) {
    ssl.pem_cert_chain = ReadFileOrEmpty(options.tls_cert);
    ssl.pem_private_key = ReadFileOrEmpty(options.tls_key);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)), impl_(new Impl) {
  if (options_.token.empty()) {
    if (const char* env = std::getenv("WEIGHTD_TOKEN")) options_.token = env;
  }
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName(options_.load_balancing_policy);
  args.SetMaxReceiveMessageSize(static_cast<int>(options_.max_receive_bytes));
  // gRPC's own reconnect backoff starts at 1 s; keep it in step with ours so
  // a retry after a refused connection really tries to connect again.
  const int backoff_ms = static_cast<int>(absl::ToInt64Milliseconds(options_.initial_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::max(backoff_ms, 1));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::max(backoff_ms, 1));
  args.SetInt(
      GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
      static_cast<int>(std::max<int64_t>(absl::ToInt64Milliseconds(options_.max_backoff), 1)));
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!options_.token.empty()) {
    interceptors.push_back(std::make_unique<TokenInterceptorFactory>(options_.token));
  }
  impl_->channel = grpc::experimental::CreateCustomChannelWithInterceptors(
      options_.target, ChannelCredentials(options_), args, std::move(interceptors));
  impl_->stub = v1::WeightService::NewStub(impl_->channel);
}

Client::~Client() = default;

template <typename Request, typename Response, typename Method>
absl::Status Client::Impl::Unary(const ClientOptions& options, Method method,
                                 const Request& request, Response* response) {
  return WithRetries(options, [&](bool*) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
    return FromGrpcStatus((stub.get()->*method)(&context, request, response));
  });
}

absl::StatusOr<std::vector<ModelInfo>> Client::ListModels() {
  v1::ListModelsResponse response;
  WEIGHTD_RETURN_IF_ERROR(impl_->Unary(options_, &v1::WeightService::Stub::ListModels,
                                       v1::ListModelsRequest(), &response));
  std::vector<ModelInfo> out;
  for (const v1::Model& m : response.models()) out.push_back(FromProto(m));
  return out;
}

absl::StatusOr<Manifest> Client::GetManifest(const std::string& model, int64_t version,
                                             const std::string& select) {
  v1::GetManifestRequest request;
  request.set_model(model);
  request.set_version(version);
  request.set_select(select);
  v1::GetManifestResponse response;
  WEIGHTD_RETURN_IF_ERROR(
      impl_->Unary(options_, &v1::WeightService::Stub::GetManifest, request, &response));
  return FromProto(response);
}

absl::StatusOr<MatchReport> Client::Match(const std::string& model,
                                          absl::Span<const TensorEntry> target,
                                          const MatchSpec& spec, int64_t* version) {
  v1::MatchRequest request;
  request.set_model(model);
  request.set_version(spec.version);
  request.set_select(spec.select);
  ToProto(target, request.mutable_target());
  ToProto(spec.rule_set(), request.mutable_rules());
  ToProto(spec.match_options(), request.mutable_options());
  v1::MatchReport response;
  WEIGHTD_RETURN_IF_ERROR(
      impl_->Unary(options_, &v1::WeightService::Stub::Match, request, &response));
  if (version != nullptr) *version = response.version();
  return FromProto(response);
}

absl::StatusOr<MatchReport> Client::Match(const torch::nn::Module& module, const std::string& model,
                                          const MatchSpec& spec, int64_t* version) {
  WEIGHTD_ASSIGN_OR_RETURN(std::vector<TensorEntry> target, ModuleEntries(module));
  return Match(model, target, spec, version);
}

namespace {

// Fetch's sink: each tensor into a new CPU tensor (pinned when bound for a
// GPU), moved to the device when complete.
class FetchIntoMap : public client_internal::FetchSink {
 public:
  FetchIntoMap(const FetchOptions& options, const CompiledRuleSet* rules, TensorMap* out)
      : options_(options), rules_(rules), out_(out) {}

  absl::Status OnReport(const v1::MatchReport& report) override {
    total_ = 0;
    for (const v1::MatchedTensor& m : report.matched()) {
      uint64_t numel = 1;
      for (int64_t d : m.shape()) numel *= static_cast<uint64_t>(d);
      total_ += options_.dtype ? numel * DTypeSize(*options_.dtype) : m.nbytes();
    }
    return absl::OkStatus();
  }

  absl::Status OnHeader(const v1::TensorHeader& header, DType dtype) override {
    name_ = header.name();
    if (rules_ != nullptr) {
      WEIGHTD_ASSIGN_OR_RETURN(name_, rules_->Apply(header.name()));
    }
    if (out_->contains(name_)) {
      return absl::InvalidArgumentError(absl::StrCat("the rules rename two tensors to ", name_,
                                                     " (one is ", header.source(), ")"));
    }
    const bool pin = !options_.device.is_cpu() && torch::cuda::is_available();
    current_ = torch::empty(std::vector<int64_t>(header.shape().begin(), header.shape().end()),
                            torch::TensorOptions().dtype(ToScalarType(dtype)).pinned_memory(pin));
    return absl::OkStatus();
  }

  absl::Status OnChunk(absl::string_view data, uint64_t offset) override {
    std::memcpy(static_cast<char*>(current_.data_ptr()) + offset, data.data(), data.size());
    done_ += data.size();
    if (options_.progress) options_.progress(done_, total_);
    return absl::OkStatus();
  }

  absl::Status OnTensorDone() override {
    torch::Tensor t = current_;
    if (!options_.device.is_cpu()) t = t.to(options_.device, /*non_blocking=*/true);
    out_->insert(name_, std::move(t));
    current_ = torch::Tensor();
    return absl::OkStatus();
  }

 private:
  const FetchOptions& options_;
  const CompiledRuleSet* rules_;
  TensorMap* out_;
  std::string name_;
  torch::Tensor current_;
  uint64_t done_ = 0;
  uint64_t total_ = 0;
};

}  // namespace

absl::StatusOr<TensorMap> Client::Fetch(const std::string& model, const FetchOptions& options) {
  if (options.rules.auto_prefix || !options.rules.ignore_missing.empty() ||
      !options.rules.ignore_unexpected.empty()) {
    return absl::InvalidArgumentError(
        "Fetch without a target takes include, exclude and renaming rules only (no auto, "
        "ignore)");
  }
  WEIGHTD_ASSIGN_OR_RETURN(CompiledRuleSet rules, CompiledRuleSet::Compile(options.rules));
  v1::FetchRequest request;
  request.set_model(model);
  request.set_version(options.version);
  request.set_select(options.select);
  for (const std::string& key : options.keys) request.add_keys(key);
  if (options.keys.empty() && (!options.rules.include.empty() || !options.rules.exclude.empty())) {
    // include/exclude pick from the manifest; pin its version so the keys
    // and the tensors come from the same one.
    WEIGHTD_ASSIGN_OR_RETURN(Manifest manifest,
                             GetManifest(model, options.version, options.select));
    request.set_version(manifest.version);
    for (const ManifestTensor& t : manifest.tensors) {
      if (rules.Selects(t.name)) request.add_keys(t.name);
    }
    if (request.keys().empty()) return TensorMap();
  } else if (!options.keys.empty()) {
    for (const std::string& key : options.keys) {
      if (!rules.Selects(key)) {
        return absl::InvalidArgumentError(
            absl::StrCat("key ", key, " is left out by the include/exclude rules"));
      }
    }
  }
  if (options.dtype) request.set_cast_dtype(std::string(DTypeName(*options.dtype)));
  request.set_chunk_bytes(options.chunk_bytes);
  request.set_max_receive_bytes(options_.max_receive_bytes);

  TensorMap out;
  const bool rename = !options.rules.rules.empty();
  FetchIntoMap sink(options, rename ? &rules : nullptr, &out);
  absl::Status status = RunFetch(impl_->stub.get(), options_, request, &sink);
  if (!options.device.is_cpu() && options.device.is_cuda() && torch::cuda::is_available()) {
    torch::cuda::synchronize();
  }
  if (!status.ok()) return status;
  return out;
}

}  // namespace weightd
