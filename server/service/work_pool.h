// Threads for the blocking parts of RPCs: loading a checkpoint (mmap and a
// checksum pass over every byte), waiting for another caller's load, casting
// a tensor. gRPC's callback API runs handlers on a few shared threads that
// must not block, or health checks and every other RPC wait behind a load.
#ifndef WEIGHTD_SERVER_SERVICE_WORK_POOL_H_
#define WEIGHTD_SERVER_SERVICE_WORK_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace weightd {

// A fixed number of threads taking tasks in FIFO order. Thread-safe. The
// destructor runs the tasks already posted, then joins.
class WorkPool {
 public:
  explicit WorkPool(int threads);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void Post(std::function<void()> task);

 private:
  void Run();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_WORK_POOL_H_
