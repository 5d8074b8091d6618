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
  Wait();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  queued_.notify_all();
  for (std::thread& t : helpers_) t.join();
}

bool ParallelCopier::CopyOne(std::unique_lock<std::mutex>& lock) {
  if (queue_.empty()) return false;
  const Part part = queue_.front();
  queue_.pop_front();
  ++copying_;
  lock.unlock();
  CopyNonTemporal(part.dst, part.src, part.n);
  lock.lock();
  if (--copying_ == 0 && queue_.empty()) idle_.notify_all();
  return true;
}

void ParallelCopier::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    queued_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_ && queue_.empty()) return;
    CopyOne(lock);
  }
}

void ParallelCopier::Submit(void* dst_ptr, const void* src_ptr, size_t n) {
  char* dst = static_cast<char*>(dst_ptr);
  const char* src = static_cast<const char*>(src_ptr);
  if (n < kMinPartBytes) {
    std::memcpy(dst, src, n);
    return;
  }
  if (threads_ == 1) {
    CopyNonTemporal(dst, src, n);
    return;
  }
  // Two parts a thread, cut on 4 KiB so that no two threads write one page.
  size_t part = std::max(kMinPartBytes, n / (2 * static_cast<size_t>(threads_)));
  part = (part + 4095) / 4096 * 4096;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (helpers_.empty()) {
      helpers_.reserve(threads_ - 1);
      for (int i = 1; i < threads_; ++i) helpers_.emplace_back([this] { Work(); });
    }
    for (size_t off = 0; off < n; off += part) {
      queue_.push_back({dst + off, src + off, std::min(part, n - off)});
    }
    if (n > part) ++split_copies_;
  }
  queued_.notify_all();
}

void ParallelCopier::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  while (CopyOne(lock)) {
  }
  idle_.wait(lock, [&] { return copying_ == 0 && queue_.empty(); });
}

}  // namespace weightd::client_internal
