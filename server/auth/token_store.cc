#include "server/auth/token_store.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace weightd {

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRead:
      return "read";
    case Role::kAdmin:
      return "admin";
    case Role::kNone:
      break;
  }
  return "none";
}

absl::StatusOr<TokenMap> ParseTokens(absl::string_view text, absl::string_view what) {
  TokenMap tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ":", line_number, ": expected \"TOKEN ROLE\", got ", fields.size(), " fields"));
    }
    Role role;
    if (fields[1] == "read") {
      role = Role::kRead;
    } else if (fields[1] == "admin") {
      role = Role::kAdmin;
    } else {
      // The token itself is a secret: never echo it.
      return absl::InvalidArgumentError(absl::StrCat(what, ":", line_number, ": role \"", fields[1],
                                                     "\" is neither read nor admin"));
    }
    if (!tokens.emplace(std::string(fields[0]), role).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ":", line_number, ": token given twice"));
    }
  }
  if (tokens.empty()) {
    // An empty file would lock everyone out; surely a mistake.
    return absl::InvalidArgumentError(absl::StrCat(what, ": no tokens"));
  }
  return tokens;
}

absl::StatusOr<std::unique_ptr<TokenStore>> TokenStore::Open(std::string path) {
  std::unique_ptr<TokenStore> store(new TokenStore(std::move(path)));
  absl::Status status = store->Reload();
  if (!status.ok()) return status;
  return store;
}

absl::Status TokenStore::Reload() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path_, ": cannot open the token file"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<TokenMap> tokens = ParseTokens(text.str(), path_);
  if (!tokens.ok()) return tokens.status();
  auto fresh = std::make_shared<const TokenMap>(*std::move(tokens));
  absl::MutexLock lock(&mu_);
  tokens_ = std::move(fresh);
  return absl::OkStatus();
}

Role TokenStore::Find(absl::string_view token) const {
  std::shared_ptr<const TokenMap> tokens;
  {
    absl::MutexLock lock(&mu_);
    tokens = tokens_;
  }
  if (tokens == nullptr) return Role::kNone;
  auto it = tokens->find(token);
  return it == tokens->end() ? Role::kNone : it->second;
}

size_t TokenStore::size() const {
  absl::MutexLock lock(&mu_);
  return tokens_ == nullptr ? 0 : tokens_->size();
}

}  // namespace weightd
