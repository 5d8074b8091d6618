#include "server/repository/scan_util.h"

#include <sys/stat.h>

#include <system_error>

#include "absl/strings/match.h"

namespace weightd::internal_repository {

namespace fs = std::filesystem;

bool InsideRoot(const fs::path& path, const std::string& root) {
  std::error_code ec;
  fs::path resolved = fs::canonical(path, ec);
  if (ec) return false;
  std::string s = resolved.string();
  return s == root || absl::StartsWith(s, root + "/");
}

bool ScanContext::Allowed(const fs::path& path) const {
  return follow_external_symlinks || InsideRoot(path, root);
}

void FillIdentity(const std::string& path, VersionEntry* entry) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    entry->file_size = st.st_size;
    entry->mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
}

}  // namespace weightd::internal_repository
