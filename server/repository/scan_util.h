// Internal to the repository scan (repository.cc, hf_cache.cc): what both
// layouts share. No gRPC here.
#ifndef WEIGHTD_SERVER_REPOSITORY_SCAN_UTIL_H_
#define WEIGHTD_SERVER_REPOSITORY_SCAN_UTIL_H_

#include <filesystem>
#include <functional>
#include <string>

#include "server/repository/repository.h"

namespace weightd::internal_repository {

// Records a skipped entry (path relative to the repository, reason).
using SkipFn = std::function<void(std::string path, std::string reason)>;

// One scan's settings. Not thread-safe; lives for one ScanRepository call.
struct ScanContext {
  std::string root;  // canonical
  bool follow_external_symlinks = false;
  SkipFn skip;

  // Whether the scan may serve `path`: it resolves inside `root`, or the
  // scan follows external symlinks.
  bool Allowed(const std::filesystem::path& path) const;
};

// The reason given for a path Allowed refuses.
inline constexpr char kOutsideReason[] =
    "resolves outside the repository (--follow_external_symlinks would serve it)";

// Whether `path`, after resolving symlinks, lies inside `root` (canonical).
bool InsideRoot(const std::filesystem::path& path, const std::string& root);

// Sets entry->file_size and mtime_ns from stat(path) (symlinks followed).
void FillIdentity(const std::string& path, VersionEntry* entry);

}  // namespace weightd::internal_repository

#endif  // WEIGHTD_SERVER_REPOSITORY_SCAN_UTIL_H_
