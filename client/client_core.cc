// weightd::ClientCore: channel, unary calls, and Fetch into host memory.
// No LibTorch: weightctl links this part only.
#include "client/client_core.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "client/client_impl.h"
#include "client/convert.h"
#include "client/fetch_stream.h"
#include "client/local_fetch.h"
#include "core/checkpoint/buffer.h"
#include "core/util/status_macros.h"
#include "proto/grpc_status.h"

namespace weightd {

using client_internal::FromProto;
using client_internal::RunFetch;
using client_internal::TensorSink;
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
  out.allow_empty = allow_empty;
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

ClientCore::ClientCore(ClientOptions options) : options_(std::move(options)), impl_(new Impl) {
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
  // Despite its name, gRPC reads this as the minimum time one connection
  // attempt gets (subchannel.cc: the attempt's deadline is the later of the
  // next backoff time and now + this), not as a backoff. It used to be the
  // 100 ms backoff: on a busy node the server's SETTINGS frame, or the TCP
  // connect itself, took longer, the attempt was cut off ("connection
  // attempt timed out before receiving SETTINGS frame", then "tcp handshaker
  // shutdown") and a herd of starting clients failed (issue 15).
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(std::clamp<int64_t>(
                  absl::ToInt64Milliseconds(options_.connect_timeout), 100, INT_MAX)));
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

ClientCore::~ClientCore() = default;

absl::StatusOr<std::vector<ModelInfo>> ClientCore::ListModels(
    std::vector<SkippedEntryInfo>* skipped) {
  v1::ListModelsResponse response;
  WEIGHTD_RETURN_IF_ERROR(impl_->Unary(options_, &v1::WeightService::Stub::ListModels,
                                       v1::ListModelsRequest(), &response));
  std::vector<ModelInfo> out;
  for (const v1::Model& m : response.models()) out.push_back(FromProto(m));
  if (skipped != nullptr) {
    skipped->clear();
    for (const v1::SkippedEntry& e : response.skipped()) skipped->push_back({e.path(), e.reason()});
  }
  return out;
}

absl::StatusOr<Manifest> ClientCore::GetManifest(const std::string& model, int64_t version,
                                                 const std::string& select,
                                                 ManifestChecksums checksums) {
  v1::GetManifestRequest request;
  request.set_model(model);
  request.set_version(version);
  request.set_select(select);
  switch (checksums) {
    case ManifestChecksums::kAll:
      request.set_checksums(v1::CHECKSUMS_ALL);
      break;
    case ManifestChecksums::kKnown:
      request.set_checksums(v1::CHECKSUMS_KNOWN);
      break;
    case ManifestChecksums::kNone:
      request.set_checksums(v1::CHECKSUMS_NONE);
      break;
  }
  v1::GetManifestResponse response;
  WEIGHTD_RETURN_IF_ERROR(
      impl_->Unary(options_, &v1::WeightService::Stub::GetManifest, request, &response));
  return FromProto(response);
}

absl::StatusOr<MatchReport> ClientCore::Match(const std::string& model,
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

namespace {

// The FetchSink of a fetch without a target: renames by the rules, reports
// progress, and passes the bytes on to a TensorSink that places them.
class RenamingSink : public client_internal::FetchSink {
 public:
  RenamingSink(const FetchSpec& spec, const CompiledRuleSet* rules, TensorSink* out)
      : spec_(spec), rules_(rules), out_(out) {}

  absl::Status OnReport(const v1::MatchReport& report) override {
    total_ = 0;
    std::vector<TensorDescriptor> plan;
    plan.reserve(report.matched_size());
    for (const v1::MatchedTensor& m : report.matched()) {
      uint64_t numel = 1;
      for (int64_t d : m.shape()) numel *= static_cast<uint64_t>(d);
      total_ += spec_.dtype ? numel * DTypeSize(*spec_.dtype) : m.nbytes();
      TensorDescriptor& t = plan.emplace_back();
      t.name = m.target();
      if (rules_ != nullptr) {
        WEIGHTD_ASSIGN_OR_RETURN(t.name, rules_->Apply(m.target()));
      }
      absl::StatusOr<DType> dtype = ParseDType(m.target_dtype());
      if (!dtype.ok()) {
        return absl::DataLossError(absl::StrCat("Fetch report: tensor ", m.target(),
                                                " has an unknown dtype \"", m.target_dtype(),
                                                "\""));
      }
      t.dtype = spec_.dtype.value_or(*dtype);
      t.shape.assign(m.shape().begin(), m.shape().end());
    }
    return out_->Plan(std::move(plan));
  }

  absl::Status OnHeader(const v1::TensorHeader& header, DType dtype) override {
    std::string name = header.name();
    if (rules_ != nullptr) {
      WEIGHTD_ASSIGN_OR_RETURN(name, rules_->Apply(header.name()));
    }
    if (!names_.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("the rules rename two tensors to ", name,
                                                     " (one is ", header.source(), ")"));
    }
    return out_->Begin(name, dtype,
                       std::vector<int64_t>(header.shape().begin(), header.shape().end()),
                       header.nbytes());
  }

  absl::Status OnChunk(absl::string_view data, uint64_t offset) override {
    WEIGHTD_RETURN_IF_ERROR(out_->Write(data, offset));
    done_ += data.size();
    if (spec_.progress) spec_.progress(done_, total_);
    return absl::OkStatus();
  }

  absl::Status OnTensorDone() override { return out_->End(); }

 private:
  const FetchSpec& spec_;
  const CompiledRuleSet* rules_;
  TensorSink* out_;
  absl::flat_hash_set<std::string> names_;
  uint64_t done_ = 0;
  uint64_t total_ = 0;
};

// FetchHost's sink: each tensor's chunks go straight into a buffer of its
// own (left uninitialised: every byte is written), which then becomes the
// storage of a contiguous TensorRecord; no second copy.
class HostSink : public TensorSink {
 public:
  explicit HostSink(StateDict* out) : out_(out) {}

  absl::Status Begin(const std::string& name, DType dtype, std::vector<int64_t> shape,
                     uint64_t nbytes) override {
    // nothrow: the size comes from the server; too large is an error, not
    // std::bad_alloc.
    bytes_.reset(new (std::nothrow) uint8_t[std::max<uint64_t>(nbytes, 1)]);
    if (bytes_ == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("tensor ", name, ": cannot allocate ", nbytes, " bytes"));
    }
    name_ = name;
    dtype_ = dtype;
    shape_ = std::move(shape);
    nbytes_ = nbytes;
    return absl::OkStatus();
  }

  absl::Status Write(absl::string_view data, uint64_t offset) override {
    std::memcpy(bytes_.get() + offset, data.data(), data.size());
    return absl::OkStatus();
  }

  absl::Status End() override {
    auto storage = std::make_shared<Storage>();
    storage->dtype = dtype_;
    const uint8_t* data = bytes_.get();
    storage->buffer = Buffer::Borrow(data, nbytes_, std::shared_ptr<const void>(std::move(bytes_)));
    storage->data = data;
    storage->nbytes = nbytes_;
    storage->key = name_;
    TensorRecord record;
    record.dtype = dtype_;
    record.strides = ContiguousStrides(shape_);
    record.shape = std::move(shape_);
    record.storage = std::move(storage);
    out_->emplace_back(std::move(name_), std::move(record));
    return absl::OkStatus();
  }

 private:
  StateDict* out_;
  std::unique_ptr<uint8_t[]> bytes_;
  std::string name_;
  DType dtype_ = DType::kFloat32;
  std::vector<int64_t> shape_;
  uint64_t nbytes_ = 0;
};

}  // namespace

absl::Status ClientCore::FetchInto(const std::string& model, const FetchSpec& spec,
                                   TensorSink* sink) {
  if (spec.rules.auto_prefix || !spec.rules.ignore_missing.empty() ||
      !spec.rules.ignore_unexpected.empty()) {
    return absl::InvalidArgumentError(
        "Fetch without a target takes include, exclude and renaming rules only (no auto, "
        "ignore)");
  }
  WEIGHTD_ASSIGN_OR_RETURN(CompiledRuleSet rules, CompiledRuleSet::Compile(spec.rules));
  v1::FetchRequest request;
  request.set_model(model);
  request.set_version(spec.version);
  request.set_select(spec.select);
  for (const std::string& key : spec.keys) request.add_keys(key);
  if (spec.keys.empty() && (!spec.rules.include.empty() || !spec.rules.exclude.empty())) {
    // include/exclude pick from the manifest; pin its version so the keys
    // and the tensors come from the same one. Names only: checksums would
    // make the server hash the whole model before the first byte.
    WEIGHTD_ASSIGN_OR_RETURN(Manifest manifest, GetManifest(model, spec.version, spec.select,
                                                            ManifestChecksums::kNone));
    request.set_version(manifest.version);
    for (const ManifestTensor& t : manifest.tensors) {
      if (rules.Selects(t.name)) request.add_keys(t.name);
    }
    if (request.keys().empty()) return sink->Plan({});
  } else if (!spec.keys.empty()) {
    for (const std::string& key : spec.keys) {
      if (!rules.Selects(key)) {
        return absl::InvalidArgumentError(
            absl::StrCat("key ", key, " is left out by the include/exclude rules"));
      }
    }
  }
  if (spec.dtype) request.set_cast_dtype(std::string(DTypeName(*spec.dtype)));
  request.set_chunk_bytes(spec.chunk_bytes);
  request.set_max_receive_bytes(options_.max_receive_bytes);

  const bool rename = !spec.rules.rules.empty();
  RenamingSink renaming(spec, rename ? &rules : nullptr, sink);
  return client_internal::RunFetchAuto(impl_->stub.get(), options_, request, &renaming, spec.transport);
}

namespace {

// FetchTo's sink: checks that each tensor is the one the report announced
// and hands it on to the receiver.
class ReceivingSink : public TensorSink {
 public:
  explicit ReceivingSink(TensorReceiver* receiver) : receiver_(receiver) {}

  absl::Status Plan(std::vector<TensorDescriptor> tensors) override {
    plan_ = tensors;
    return receiver_->Plan(std::move(tensors));
  }

  absl::Status Begin(const std::string& name, DType dtype, std::vector<int64_t> shape,
                     uint64_t) override {
    if (next_ >= plan_.size() || plan_[next_].name != name || plan_[next_].dtype != dtype ||
        plan_[next_].shape != shape) {
      return absl::DataLossError(absl::StrCat("Fetch stream broken at tensor ", name,
                                              ": not the tensor its report announced"));
    }
    return receiver_->Begin(next_);
  }

  absl::Status Write(absl::string_view data, uint64_t) override { return receiver_->Write(data); }

  absl::Status End() override {
    ++next_;
    return receiver_->End();
  }

 private:
  TensorReceiver* receiver_;
  std::vector<TensorDescriptor> plan_;
  size_t next_ = 0;
};

}  // namespace

absl::Status ClientCore::FetchTo(const std::string& model, const FetchSpec& spec,
                                 TensorReceiver* receiver) {
  ReceivingSink sink(receiver);
  return FetchInto(model, spec, &sink);
}

absl::StatusOr<StateDict> ClientCore::FetchHost(const std::string& model, const FetchSpec& spec) {
  StateDict out;
  HostSink sink(&out);
  WEIGHTD_RETURN_IF_ERROR(FetchInto(model, spec, &sink));
  return out;
}

}  // namespace weightd
