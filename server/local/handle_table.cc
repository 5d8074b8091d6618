#include "server/local/handle_table.h"

#include <sys/random.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"

namespace weightd {
namespace {

// 128 bits from the kernel's CSPRNG: a handle is a capability, guessing one
// must not be feasible.
absl::StatusOr<std::string> RandomHandle() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError("getrandom failed: no handle for the side channel");
    got += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

}  // namespace

HandleTable::HandleTable(size_t max_pending, absl::Duration ttl,
                         std::function<absl::Time()> now)
    : max_pending_(max_pending), ttl_(ttl), now_(std::move(now)) {}

size_t HandleTable::SweepLocked(std::vector<PendingHandoff>* dropped) {
  const absl::Time now = now_();
  size_t n = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expires <= now) {
      dropped->push_back(std::move(it->second.handoff));
      entries_.erase(it++);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

absl::StatusOr<std::string> HandleTable::Add(PendingHandoff handoff) {
  absl::StatusOr<std::string> handle = RandomHandle();
  if (!handle.ok()) return handle.status();
  // Descriptors and snapshots are released outside the lock.
  std::vector<PendingHandoff> dropped;
  absl::MutexLock lock(&mu_);
  SweepLocked(&dropped);
  if (entries_.size() >= max_pending_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "LocalFetch: ", entries_.size(), " handles wait to be redeemed on the side channel, "
        "the limit; retry shortly or use Fetch"));
  }
  entries_[*handle] = Entry{std::move(handoff), now_() + ttl_};
  return handle;
}

absl::StatusOr<PendingHandoff> HandleTable::Take(absl::string_view handle) {
  std::vector<PendingHandoff> dropped;
  absl::MutexLock lock(&mu_);
  SweepLocked(&dropped);
  auto it = entries_.find(handle);
  if (it == entries_.end()) {
    return absl::NotFoundError(
        "unknown handle: never issued, already redeemed, or expired (handles are single use "
        "and live a few seconds)");
  }
  PendingHandoff out = std::move(it->second.handoff);
  entries_.erase(it);
  return out;
}

size_t HandleTable::Sweep() {
  std::vector<PendingHandoff> dropped;
  absl::MutexLock lock(&mu_);
  return SweepLocked(&dropped);
}

size_t HandleTable::pending() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace weightd
