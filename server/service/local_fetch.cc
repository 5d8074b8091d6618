#include "server/service/local_fetch.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/service/convert.h"

namespace weightd {

absl::Status CheckLocalPeer(absl::string_view peer, const LocalFetchConfig& config) {
  if (config.handles == nullptr) {
    return absl::FailedPreconditionError(
        "LocalFetch: this server listens on no Unix socket (--listen unix:PATH); use Fetch");
  }
  if (!absl::StartsWith(peer, "unix:")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "LocalFetch is only answered over the server's Unix socket, not to peer ", peer,
        "; use Fetch"));
  }
  return absl::OkStatus();
}

absl::Status DoLocalFetch(ModelStore* store, const LocalFetchConfig& config, absl::Time deadline,
                          const v1::LocalFetchRequest& request, v1::LocalFetchResponse* response) {
  const v1::FetchRequest& fetch = request.fetch();
  absl::StatusOr<v1::ModelConfig> model_config = store->Config(fetch.model());
  if (!model_config.ok()) return model_config.status();
  absl::StatusOr<FetchSpec> spec = FromProto(fetch, *model_config);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<std::shared_ptr<const Snapshot>> snapshot =
      store->Acquire(fetch.model(), fetch.version(), deadline);
  if (!snapshot.ok()) return snapshot.status();
  absl::StatusOr<std::shared_ptr<const StateDictView>> view = (*snapshot)->View(fetch.select());
  if (!view.ok()) return view.status();
  const int64_t version = (*snapshot)->version();
  absl::StatusOr<LocalHandoff> handoff =
      PrepareLocalHandoff(*snapshot, **view, *spec, request.checksums(), config);
  if (!handoff.ok()) return handoff.status();
  ToProto(handoff->plan.report, version, response->mutable_report());
  for (const LocalFileOut& file : handoff->layout.files) {
    v1::LocalFile* out = response->add_files();
    out->set_size(file.size);
    out->set_kind(file.kind);
    out->set_name(file.name);
  }
  for (size_t i = 0; i < handoff->layout.tensors.size(); ++i) {
    const LocalTensorOut& t = handoff->layout.tensors[i];
    v1::LocalTensor* out = response->add_tensors();
    out->set_index(static_cast<uint32_t>(i));
    out->set_name(t.name);
    out->set_source(t.source);
    out->set_dtype(std::string(DTypeName(t.dtype)));
    out->mutable_shape()->Add(t.shape.begin(), t.shape.end());
    out->set_nbytes(t.nbytes);
    out->set_file(t.location.file);
    out->set_offset(t.location.offset);
    if (t.checksum) out->set_checksum(absl::StrCat(absl::Hex(*t.checksum, absl::kZeroPad16)));
  }
  response->set_handle(handoff->handle);
  response->set_expires_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(config.handles->ttl())));
  response->set_side_channel(config.side_channel);
  if (config.response_hook) config.response_hook(response);
  return absl::OkStatus();
}

}  // namespace weightd
