// Big memcpys split across a few threads, for the same-node path (private
// to the client library). One thread's memcpy does not reach this
// machine's memory bandwidth: torch 2.x's copy_ splits the same copy over
// its intra-op threads (at::parallel_for), and so does this. Copies may be
// queued (Submit) and waited for once (Wait), so that the loading thread
// does not stop at every tensor: the helpers copy one tensor while it
// queues the next. Parts of a MiB or more are copied with non-temporal
// stores, which skip reading each destination line before overwriting it
// (bench/RESULTS.md, same-node rows). No LibTorch here: the caller picks
// the thread count (Client::Load: at::get_num_threads(), as copy_).
#ifndef WEIGHTD_CLIENT_PARALLEL_COPY_H_
#define WEIGHTD_CLIENT_PARALLEL_COPY_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
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
  // Copies below this stay a plain memcpy on the calling thread; larger
  // ones are cut into parts of at least this much.
  static constexpr size_t kMinPartBytes = size_t{1} << 20;

  // `threads` in all, the calling thread included; <= 1 never starts one
  // (every copy is then done at once, on the calling thread). The helpers
  // start at the first copy big enough to split.
  explicit ParallelCopier(int threads) : threads_(threads < 1 ? 1 : threads) {}
  // Waits for what is queued.
  ~ParallelCopier();
  ParallelCopier(const ParallelCopier&) = delete;
  ParallelCopier& operator=(const ParallelCopier&) = delete;

  // memcpy(dst, src, n), maybe later: both ranges must stay valid (and
  // `dst` unread) until Wait() returns. One thread submits and waits.
  void Submit(void* dst, const void* src, size_t n);
  // Returns when every submitted copy is done; the calling thread copies
  // queued parts meanwhile.
  void Wait();
  // Submit + Wait.
  void Copy(void* dst, const void* src, size_t n) {
    Submit(dst, src, n);
    Wait();
  }

  int threads() const { return threads_; }
  // Copies that were split into parts (for tests).
  size_t split_copies() const { return split_copies_; }

 private:
  struct Part {
    char* dst;
    const char* src;
    size_t n;
  };

  void Work();
  // Copies the next queued part with `lock` released; false when none.
  bool CopyOne(std::unique_lock<std::mutex>& lock);

  const int threads_;
  std::vector<std::thread> helpers_;
  std::mutex mu_;
  std::condition_variable queued_, idle_;
  std::deque<Part> queue_;
  int copying_ = 0;  // parts taken off the queue, not done yet
  bool stop_ = false;
  size_t split_copies_ = 0;
};

}  // namespace weightd::client_internal

#endif  // WEIGHTD_CLIENT_PARALLEL_COPY_H_
