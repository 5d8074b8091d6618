// The reactor of one Fetch stream (raw callback method: requests and
// responses are grpc::ByteBuffers).
//
// Stream: the match report, then per tensor a TensorHeader and its
// TensorChunks. A chunk message is two slices: a small hand-encoded protobuf
// prefix and a slice pointing straight into the snapshot's memory (the mmap),
// whose destroy callback drops a reference to the snapshot; no tensor byte
// is copied into a protobuf string. Tensors that need a cast or are not
// contiguous are converted once into a scratch buffer the slices share.
// A GPU-resident version (ModelStore::ResidencyForFetch) is read from the
// device instead: a DeviceReader copies it through pinned staging buffers,
// double-buffered, and each chunk's slice holds its staging buffer until
// gRPC destroys the slice.
//
// With FetchRequest.checksum_trailer, a zero-copy tensor whose checksum the
// view does not know yet goes out at once with an empty header checksum; its
// chunks are hashed as they are built and a TensorTrailer follows the last
// one (the view remembers the value). So the first byte does not wait for a
// pass over the tensor, however large.
#ifndef WEIGHTD_SERVER_SERVICE_FETCH_REACTOR_H_
#define WEIGHTD_SERVER_SERVICE_FETCH_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "server/cache/device_reader.h"
#include "server/cache/fetch_plan.h"
#include "server/cache/model_store.h"
#include "server/service/chunk_framing.h"
#include "server/service/request_limits.h"
#include "server/service/work_pool.h"
#include "weightd/v1/weightd.pb.h"

struct XXH64_state_s;

namespace weightd {

// Deletes itself when the RPC is done, after calling `on_done` (if any).
// Thread-safe: gRPC may run OnCancel and OnWriteDone concurrently. `limits`
// (null: none) must outlive the reactor.
class FetchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // Parsing, the model's load and the plan run on `pool` (null: inline, in
  // the constructor), so a load does not hold one of gRPC's threads.
  FetchReactor(ModelStore* store, WorkPool* pool, grpc::CallbackServerContext* context,
               const grpc::ByteBuffer* request, const RequestLimits* limits = nullptr,
               std::function<void()> on_done = nullptr);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  absl::Status Begin(ModelStore* store, grpc::CallbackServerContext* context,
                     const grpc::ByteBuffer* request, const RequestLimits* limits)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the next message, or finishes the RPC when nothing is left.
  void Continue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Builds the next message into message_; false when the stream is done.
  absl::StatusOr<bool> NextMessage() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PrepareTensor(const PlannedTensor& planned, v1::TensorHeader* header)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishOnce(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct HashDeleter {
    void operator()(XXH64_state_s* state) const;
  };

  const std::function<void()> on_done_;
  absl::Mutex mu_;
  std::shared_ptr<const Snapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const StateDictView> view_ ABSL_GUARDED_BY(mu_);
  FetchPlan plan_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t chunk_bytes_ ABSL_GUARDED_BY(mu_) = kDefaultChunkBytes;
  bool report_sent_ ABSL_GUARDED_BY(mu_) = false;
  size_t tensor_ ABSL_GUARDED_BY(mu_) = 0;
  bool header_sent_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  // The device copy of the version (null: read the host copy), and one
  // reader over the planned tensors sent from it (all but casts), so its
  // copies run ahead across tensor boundaries. from_device_[i]: whether
  // plan_.tensors[i] is one; device_tensor_: its position in the reader's
  // list; device_offset_: bytes of it sent.
  std::shared_ptr<const GpuResidency> residency_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<DeviceReader> reader_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> from_device_ ABSL_GUARDED_BY(mu_);
  size_t device_tensor_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t device_offset_ ABSL_GUARDED_BY(mu_) = 0;
  // The current tensor's bytes to send and what keeps them alive.
  absl::Span<const uint8_t> bytes_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const void> keepalive_ ABSL_GUARDED_BY(mu_);
  // checksum_trailer: the client takes checksums after the data.
  bool trailer_ ABSL_GUARDED_BY(mu_) = false;
  // The current tensor's checksum is being computed from its chunks.
  bool hashing_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<XXH64_state_s, HashDeleter> hash_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer message_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Until Begin has run on the pool: a cancel then only marks cancelled_
  // (finishing would delete the reactor under the pending task).
  bool starting_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_FETCH_REACTOR_H_
