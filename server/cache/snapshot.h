// One loaded checkpoint version, as the server serves it. No gRPC here.
#ifndef WEIGHTD_SERVER_CACHE_SNAPSHOT_H_
#define WEIGHTD_SERVER_CACHE_SNAPSHOT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/checkpoint/checkpoint.h"
#include "core/match/match.h"
#include "nlohmann/json.hpp"

namespace weightd {

// The state dict at one select path of a snapshot, with per-tensor checksums.
// Thread-safe: immutable except for the checksum cache, which is filled
// lazily (once per tensor) because a checksum reads every byte of the tensor
// and loading a model must not read the whole file.
class StateDictView {
 public:
  StateDictView(std::string select_path, StateDict tensors);
  StateDictView(const StateDictView&) = delete;
  StateDictView& operator=(const StateDictView&) = delete;

  const std::string& select_path() const { return select_path_; }
  const StateDict& tensors() const { return tensors_; }
  const std::vector<TensorEntry>& entries() const { return entries_; }
  uint64_t bytes() const { return bytes_; }
  // Index of `name` in tensors(), or -1.
  int Find(absl::string_view name) const;
  // xxHash64 (seed 0) of tensor `index`'s row-major bytes; computed on first
  // call (concurrent first calls hash once), then cached.
  uint64_t Checksum(size_t index) const;
  // The checksum if it is already known (computed by Checksum or handed to
  // RememberChecksum); never computes.
  std::optional<uint64_t> KnownChecksum(size_t index) const;
  // Records the checksum of tensor `index`'s row-major bytes that a caller
  // hashed anyway (a Fetch stream, as the bytes went out), so that later
  // manifests and fetches know it. Must be the true value.
  void RememberChecksum(size_t index, uint64_t checksum) const;

 private:
  const std::string select_path_;
  const StateDict tensors_;
  std::vector<TensorEntry> entries_;
  // Views of tensors_' names (const, so they never move).
  absl::flat_hash_map<absl::string_view, int> index_;
  uint64_t bytes_ = 0;
  std::unique_ptr<std::once_flag[]> checksum_once_;
  // checksums_[i] is valid once known_[i] is true (release/acquire).
  std::unique_ptr<std::atomic<uint64_t>[]> checksums_;
  std::unique_ptr<std::atomic<bool>[]> known_;
};

// Immutable view of one loaded checkpoint version.
// Thread-safe: all methods are const. Memory stays valid while any
// shared_ptr to this snapshot (or to a view or tensor of it) is held, even
// after the model is unloaded or evicted.
class Snapshot {
 public:
  // Reads `path` (zero-copy: tensors are views into an mmap) and selects the
  // state dict at `select` (empty: automatic). Errors name the file.
  static absl::StatusOr<std::shared_ptr<const Snapshot>> Load(std::string model, int64_t version,
                                                              const std::string& path,
                                                              absl::string_view select);

  const std::string& model() const { return model_; }
  int64_t version() const { return version_; }
  const std::string& format() const { return checkpoint_.format; }
  const std::string& path() const { return checkpoint_.path; }
  const Checkpoint& checkpoint() const { return checkpoint_; }

  // The state dict chosen at load time (the configured select path).
  const std::shared_ptr<const StateDictView>& default_view() const { return default_view_; }
  // The state dict at `select`; empty: default_view(). Views of other paths
  // are built on first use and kept (a few of them). NotFound names the path.
  absl::StatusOr<std::shared_ptr<const StateDictView>> View(absl::string_view select) const;
  // Non-tensor leaves outside `view`'s selection.
  nlohmann::ordered_json Metadata(const StateDictView& view) const;

  // Bytes this snapshot counts against the host budget: the tensor bytes of
  // its default view.
  uint64_t host_bytes() const { return default_view_->bytes(); }

 private:
  Snapshot() = default;

  std::string model_;
  int64_t version_ = 0;
  Checkpoint checkpoint_;
  std::string default_select_;
  std::shared_ptr<const StateDictView> default_view_;
  mutable std::mutex mu_;
  mutable absl::flat_hash_map<std::string, std::shared_ptr<const StateDictView>> views_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_CACHE_SNAPSHOT_H_
