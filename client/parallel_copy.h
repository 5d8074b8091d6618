// A memcpy split across a few threads, for the big copies of the same-node
// path (private to the client library). One thread's memcpy does not reach
// this machine's memory bandwidth: torch 2.x's copy_ splits the same copy
// over its intra-op threads (at::parallel_for), and so does this. Parts of
// a MiB or more are copied with non-temporal stores, which skip reading
// each destination line before overwriting it (bench/RESULTS.md, same-node
// rows). No LibTorch here: the caller picks the thread count (Client::Load:
// at::get_num_threads(), as copy_).
#ifndef WEIGHTD_CLIENT_PARALLEL_COPY_H_
#define WEIGHTD_CLIENT_PARALLEL_COPY_H_

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace weightd::client_internal {

// memcpy with non-temporal (streaming) stores where the CPU has them (SSE2
// on x86-64), else memcpy. For copies much larger than the caches whose
// destination is not read soon.
void CopyNonTemporal(void* dst, const void* src, size_t n);

class ParallelCopier {
 public:
  // Copies below kMinPartBytes per thread stay on the calling thread;
  // below kMinPartBytes in all, they are a plain memcpy.
  static constexpr size_t kMinPartBytes = size_t{1} << 20;

  // `threads` in all, the calling thread included; <= 1 never starts one.
  // The helpers start at the first copy big enough to split.
  explicit ParallelCopier(int threads) : threads_(threads < 1 ? 1 : threads) {}
  ~ParallelCopier();
  ParallelCopier(const ParallelCopier&) = delete;
  ParallelCopier& operator=(const ParallelCopier&) = delete;

  // memcpy(dst, src, n), returning when every part is done. Not reentrant:
  // one copy at a time (the loading thread's).
  void Copy(void* dst, const void* src, size_t n);

  int threads() const { return threads_; }
  // Copies that were split (for tests and reports).
  size_t split_copies() const { return split_copies_; }

 private:
  void Start();
  void Work(int index);
  void CopyPart(int part);

  const int threads_;
  std::vector<std::thread> helpers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  // The current copy (guarded by mu_ while helpers read it).
  char* dst_ = nullptr;
  const char* src_ = nullptr;
  size_t n_ = 0;
  int parts_ = 0;
  unsigned long generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  size_t split_copies_ = 0;
};

}  // namespace weightd::client_internal

#endif  // WEIGHTD_CLIENT_PARALLEL_COPY_H_
