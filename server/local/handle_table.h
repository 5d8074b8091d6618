// One-time handles of the same-node path: what a LocalFetch response
// promises and the side channel hands over. No gRPC here.
#ifndef WEIGHTD_SERVER_LOCAL_HANDLE_TABLE_H_
#define WEIGHTD_SERVER_LOCAL_HANDLE_TABLE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/ipc/unique_fd.h"

namespace weightd {

// What a handle stands for: the descriptors to send (owned: closed when the
// handle is redeemed, expires or the table goes) and what they came from
// (the snapshot, held so nothing is unmapped or evicted in between).
struct PendingHandoff {
  std::vector<UniqueFd> fds;
  std::shared_ptr<const void> keepalive;
};

// Thread-safe. Bounded: at most `max_pending` handles wait at once.
class HandleTable {
 public:
  // `now` is the clock (tests pass their own).
  HandleTable(size_t max_pending, absl::Duration ttl,
              std::function<absl::Time()> now = [] { return absl::Now(); });

  // A fresh 128-bit random handle (32 hex digits) for `handoff`, valid for
  // ttl(). ResourceExhausted when max_pending handles already wait (expired
  // ones are dropped first).
  absl::StatusOr<std::string> Add(PendingHandoff handoff);

  // Removes and returns the handoff of `handle`. NotFound for a handle that
  // is unknown, was redeemed already, or has expired (the message says which
  // cannot be told apart: handles are forgotten once used).
  absl::StatusOr<PendingHandoff> Take(absl::string_view handle);

  // Drops expired handles (closing their descriptors); returns how many.
  size_t Sweep();

  size_t pending() const;
  absl::Duration ttl() const { return ttl_; }

 private:
  struct Entry {
    PendingHandoff handoff;
    absl::Time expires;
  };
  size_t SweepLocked(std::vector<PendingHandoff>* dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_pending_;
  const absl::Duration ttl_;
  const std::function<absl::Time()> now_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_LOCAL_HANDLE_TABLE_H_
