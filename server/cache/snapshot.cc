#include "server/cache/snapshot.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/select.h"
#include "core/format/checkpoint_io.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

// Views of non-default select paths kept per snapshot; more are built per
// request and dropped, so a client cannot grow the cache without bound.
constexpr size_t kMaxCachedViews = 8;

// A file the server cannot open is the server's problem, not the caller's:
// PERMISSION_DENIED or NOT_FOUND would read as "your credentials" or "no such
// model" to a client. Those become FAILED_PRECONDITION with the same message
// (it names the file and the errno); other codes pass through.
absl::Status AsServerFault(const absl::Status& status) {
  if (absl::IsPermissionDenied(status) || absl::IsNotFound(status)) {
    return absl::FailedPreconditionError(status.message());
  }
  return status;
}

}  // namespace

StateDictView::StateDictView(std::string select_path, StateDict tensors)
    : select_path_(std::move(select_path)),
      tensors_(std::move(tensors)),
      entries_(EntriesFromStateDict(tensors_)),
      checksum_once_(new std::once_flag[tensors_.size()]),
      checksums_(new std::atomic<uint64_t>[tensors_.size()]()),
      known_(new std::atomic<bool>[tensors_.size()]()) {
  index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    index_.emplace(tensors_[i].first, static_cast<int>(i));
    bytes_ += tensors_[i].second.nbytes();
  }
}

int StateDictView::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

uint64_t StateDictView::Checksum(size_t index) const {
  if (std::optional<uint64_t> known = KnownChecksum(index)) return *known;
  std::call_once(checksum_once_[index], [&] {
    // A fetch may have remembered it meanwhile; then the hash is not redone.
    if (!known_[index].load(std::memory_order_acquire)) {
      RememberChecksum(index, tensors_[index].second.Checksum());
    }
  });
  return checksums_[index].load(std::memory_order_acquire);
}

std::optional<uint64_t> StateDictView::KnownChecksum(size_t index) const {
  if (!known_[index].load(std::memory_order_acquire)) return std::nullopt;
  return checksums_[index].load(std::memory_order_relaxed);
}

void StateDictView::RememberChecksum(size_t index, uint64_t checksum) const {
  // Every writer stores the same value (the hash of immutable bytes), so
  // racing writers need no ordering among themselves.
  checksums_[index].store(checksum, std::memory_order_relaxed);
  known_[index].store(true, std::memory_order_release);
}

absl::StatusOr<std::shared_ptr<const Snapshot>> Snapshot::Load(std::string model,
                                                               int64_t version,
                                                               const std::string& path,
                                                               absl::string_view select) {
  std::shared_ptr<Snapshot> snapshot(new Snapshot());
  snapshot->model_ = std::move(model);
  snapshot->version_ = version;
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(path);
  if (!checkpoint.ok()) return AsServerFault(checkpoint.status());
  snapshot->checkpoint_ = *std::move(checkpoint);
  absl::StatusOr<Selection> selection = SelectStateDict(snapshot->checkpoint_, select);
  if (!selection.ok()) {
    return absl::Status(selection.status().code(),
                        absl::StrCat(path, ": ", selection.status().message()));
  }
  snapshot->default_select_ = std::string(select);
  snapshot->default_view_ =
      std::make_shared<StateDictView>(selection->path, std::move(selection->tensors));
  return std::shared_ptr<const Snapshot>(std::move(snapshot));
}

absl::StatusOr<std::shared_ptr<const StateDictView>> Snapshot::View(
    absl::string_view select) const {
  if (select.empty() || select == default_select_ || select == default_view_->select_path()) {
    return default_view_;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = views_.find(select);
    if (it != views_.end()) return it->second;
  }
  WEIGHTD_ASSIGN_OR_RETURN(Selection selection, SelectStateDict(checkpoint_, select));
  auto view = std::make_shared<const StateDictView>(selection.path, std::move(selection.tensors));
  std::lock_guard<std::mutex> lock(mu_);
  if (views_.size() < kMaxCachedViews) views_.emplace(std::string(select), view);
  return view;
}

nlohmann::ordered_json Snapshot::Metadata(const StateDictView& view) const {
  return weightd::Metadata(checkpoint_, view.select_path());
}

}  // namespace weightd
