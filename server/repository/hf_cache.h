// The Hugging Face hub cache layout inside a repository (README, "Hugging
// Face hub cache"), as huggingface_hub writes it:
//
//   <repo>/models--ORG--NAME/refs/main           the commit hash of main
//   <repo>/models--ORG--NAME/snapshots/REV/...   files, symlinks into blobs/
//   <repo>/models--ORG--NAME/blobs/<hash>
//
// Served as model "ORG--NAME" ("/" is not allowed in model names: they are
// file names in --model_config_dir, health service names and metric labels).
// Each snapshot with a checkpoint is a version: refs/main's snapshot is the
// newest; the others are numbered 1, 2, ... by the snapshot directory's
// mtime (then name), oldest first. A snapshot's checkpoint is, in this order
// of preference, model.safetensors.index.json (its shards beside it),
// model.safetensors, pytorch_model.bin. No gRPC here.
#ifndef WEIGHTD_SERVER_REPOSITORY_HF_CACHE_H_
#define WEIGHTD_SERVER_REPOSITORY_HF_CACHE_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/repository/repository.h"
#include "server/repository/scan_util.h"

namespace weightd::internal_repository {

// Whether the root entry `name` belongs to the hub cache layout: "models--*"
// (always, so a plain model cannot be named so), "datasets--*", "spaces--*".
bool IsHfCacheEntry(absl::string_view name);

// Scans the root entry `dir` named `name` (IsHfCacheEntry). Appends the model
// to `models` unless the entry is skipped as a whole (not a model repo, an
// invalid name, outside the repository); a model without a servable
// refs/main snapshot is appended with no versions and no_versions_reason
// set. Skips go to ctx.skip, as in the plain layout.
void ScanHfCacheEntry(const std::filesystem::path& dir, const std::string& name,
                      const ScanContext& ctx, std::vector<ModelEntry>* models);

}  // namespace weightd::internal_repository

#endif  // WEIGHTD_SERVER_REPOSITORY_HF_CACHE_H_
