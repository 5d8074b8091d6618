#include "client/parallel_copy.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace weightd::client_internal {

void CopyNonTemporal(void* dst_ptr, const void* src_ptr, size_t n) {
#if defined(__x86_64__)
  char* dst = static_cast<char*>(dst_ptr);
  const char* src = static_cast<const char*>(src_ptr);
  // Streaming stores want 16-byte aligned destinations: memcpy the head up
  // to the first boundary and the tail after the last whole 64 bytes.
  const size_t head = (16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15;
  if (n < head + 64) {
    std::memcpy(dst, src, n);
    return;
  }
  std::memcpy(dst, src, head);
  dst += head;
  src += head;
  n -= head;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
  // Streaming stores are weakly ordered: fence before anyone reads them
  // (another thread joins on a mutex after this, which also orders them).
  _mm_sfence();
  std::memcpy(dst + i, src + i, n - i);
#else
  std::memcpy(dst_ptr, src_ptr, n);
#endif
}

ParallelCopier::~ParallelCopier() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : helpers_) t.join();
}

void ParallelCopier::Start() {
  helpers_.reserve(threads_ - 1);
  for (int i = 1; i < threads_; ++i) helpers_.emplace_back([this, i] { Work(i); });
}

// Part `part` of `parts_`: equal runs, cut on 4 KiB so that no two threads
// write the same page.
void ParallelCopier::CopyPart(int part) {
  const size_t per = (n_ / parts_ + 4095) / 4096 * 4096;
  const size_t lo = std::min(n_, per * part);
  const size_t hi = part + 1 == parts_ ? n_ : std::min(n_, per * (part + 1));
  if (lo < hi) CopyNonTemporal(dst_ + lo, src_ + lo, hi - lo);
}

void ParallelCopier::Work(int index) {
  unsigned long seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    if (index >= parts_) continue;
    lock.unlock();
    CopyPart(index);
    lock.lock();
    if (--pending_ == 0) done_.notify_one();
  }
}

void ParallelCopier::Copy(void* dst, const void* src, size_t n) {
  const int parts = static_cast<int>(std::min<size_t>(threads_, n / kMinPartBytes));
  if (parts <= 1) {
    if (n >= kMinPartBytes) {
      CopyNonTemporal(dst, src, n);
    } else {
      std::memcpy(dst, src, n);
    }
    return;
  }
  if (helpers_.empty()) Start();
  {
    std::lock_guard<std::mutex> lock(mu_);
    dst_ = static_cast<char*>(dst);
    src_ = static_cast<const char*>(src);
    n_ = n;
    parts_ = parts;
    pending_ = parts - 1;
    ++generation_;
  }
  wake_.notify_all();
  CopyPart(0);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return pending_ == 0; });
  ++split_copies_;
}

}  // namespace weightd::client_internal
