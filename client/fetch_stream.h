// Reading one Fetch stream (private to the client library): retries while
// the server is UNAVAILABLE before anything arrived, checks the stream's
// order, sizes and per-tensor checksums, and hands the bytes to a sink that
// decides where they go (a new tensor for Fetch, a parameter for Load).
#ifndef WEIGHTD_CLIENT_FETCH_STREAM_H_
#define WEIGHTD_CLIENT_FETCH_STREAM_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client_core.h"
#include "weightd/v1/weightd.grpc.pb.h"

namespace weightd::client_internal {

class FetchSink {
 public:
  virtual ~FetchSink() = default;
  // The match report, first in the stream.
  virtual absl::Status OnReport(const v1::MatchReport& report) = 0;
  // A tensor begins; `dtype` and the sizes in `header` are validated.
  virtual absl::Status OnHeader(const v1::TensorHeader& header, DType dtype) = 0;
  // The next bytes of the current tensor, at `offset` (consecutive).
  virtual absl::Status OnChunk(absl::string_view data, uint64_t offset) = 0;
  // The same, from the local path's mapping: `data` stays valid until
  // Drain(), so the sink may copy it later (Load queues its copies).
  virtual absl::Status OnMappedChunk(absl::string_view data, uint64_t offset) {
    return OnChunk(data, offset);
  }
  // Before mapped bytes go away (the local path's end, failed or not):
  // whatever the sink queued is done when this returns.
  virtual void Drain() {}
  // All bytes of the current tensor arrived and their checksum matched.
  virtual absl::Status OnTensorDone() = 0;
};

// Where a fetch without a target puts tensors (ClientCore::FetchInto): the
// names arrive renamed by the rules and unique, in checkpoint order.
class TensorSink {
 public:
  virtual ~TensorSink() = default;
  // Before any tensor: what the stream will carry, from its report (names
  // renamed, dtypes as sent); empty when include/exclude leave nothing.
  virtual absl::Status Plan(std::vector<TensorDescriptor> tensors) { return absl::OkStatus(); }
  // A tensor begins; `nbytes` fits `shape` and `dtype`.
  virtual absl::Status Begin(const std::string& name, DType dtype, std::vector<int64_t> shape,
                             uint64_t nbytes) = 0;
  // The next bytes of the current tensor, at `offset` (consecutive, in range).
  virtual absl::Status Write(absl::string_view data, uint64_t offset) = 0;
  // All bytes arrived and their checksum matched.
  virtual absl::Status End() = 0;
};

// Runs `request` to its end. The stream's own error status is returned as
// the server gave it; a broken stream (bad order, short tensor, checksum
// mismatch) is DataLoss naming the tensor.
absl::Status RunFetch(v1::WeightService::Stub* stub, const ClientOptions& options,
                      const v1::FetchRequest& request, FetchSink* sink);

// Calls `attempt(&retryable)` until it succeeds, fails with something other
// than UNAVAILABLE, says it cannot be retried, or options.max_attempts calls
// were made; sleeps with exponential backoff in between.
// The last UNAVAILABLE names the target and how long was tried, since
// gRPC's own message ("connections to all backends failing") names neither.
template <typename Attempt>
absl::Status WithRetries(const ClientOptions& options, Attempt attempt) {
  absl::Duration backoff = options.initial_backoff;
  const absl::Time start = absl::Now();
  for (int i = 1;; ++i) {
    bool retryable = true;
    absl::Status status = attempt(&retryable);
    if (status.ok() || !absl::IsUnavailable(status) || !retryable) return status;
    if (i >= options.max_attempts) {
      return absl::UnavailableError(absl::StrCat(
          "weightd at ", options.target, " unavailable (", i, i == 1 ? " attempt" : " attempts",
          " in ", absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
          "): ", status.message()));
    }
    absl::SleepFor(backoff);
    backoff = std::min(options.max_backoff, backoff * options.backoff_multiplier);
  }
}

}  // namespace weightd::client_internal

#endif  // WEIGHTD_CLIENT_FETCH_STREAM_H_
