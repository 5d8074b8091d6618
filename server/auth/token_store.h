// Bearer tokens and their roles, read from a file. No gRPC here.
//
// File format: one `TOKEN ROLE` per line, ROLE `read` or `admin`; blank lines
// and lines starting with `#` are ignored. `admin` includes `read`.
#ifndef WEIGHTD_SERVER_AUTH_TOKEN_STORE_H_
#define WEIGHTD_SERVER_AUTH_TOKEN_STORE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace weightd {

enum class Role { kNone = 0, kRead = 1, kAdmin = 2 };

absl::string_view RoleName(Role role);

using TokenMap = absl::flat_hash_map<std::string, Role>;

// Parses the token file text; `what` names the file in errors.
// InvalidArgument for an unknown role, a line with other than two fields, a
// token given twice, or a file without tokens.
absl::StatusOr<TokenMap> ParseTokens(absl::string_view text, absl::string_view what);

// Thread-safe. Lookups read an immutable map swapped in whole by Reload, so a
// reload never shows a half-read file.
class TokenStore {
 public:
  // Reads `path`; its errors name the file.
  static absl::StatusOr<std::unique_ptr<TokenStore>> Open(std::string path);

  // Re-reads the file. On error the previous tokens stay in force.
  absl::Status Reload();

  // The role of `token`; kNone when unknown.
  Role Find(absl::string_view token) const;

  size_t size() const;
  const std::string& path() const { return path_; }

 private:
  explicit TokenStore(std::string path) : path_(std::move(path)) {}

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const TokenMap> tokens_ ABSL_GUARDED_BY(mu_);
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_AUTH_TOKEN_STORE_H_
