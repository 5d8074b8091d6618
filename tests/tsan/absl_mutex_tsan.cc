// Makes Debian's absl::Mutex and absl::CondVar visible to ThreadSanitizer.
//
// Debian builds Abseil without -fsanitize=thread, so the TSan annotations in
// absl/synchronization/mutex.cc are compiled out and TSan sees none of the
// happens-before edges an absl::Mutex creates (its futex and atomics live in
// the uninstrumented library). Every access guarded by such a mutex, ours and
// gRPC's (gRPC 1.51's Mutex is absl::Mutex), is then reported as a race.
//
// This library, linked into every executable of the TSan build
// (WEIGHTD_TSAN_ABSL=ON, scripts/sanitize.sh tsan), defines the public
// lock/unlock/wait entry points itself: each one tells TSan what it does
// (__tsan_mutex_pre_lock/post_lock/pre_unlock/post_unlock, the annotations
// Abseil's own TSan build makes) and calls the real function, found with
// dlsym(RTLD_NEXT). Being earlier in the symbol search order than
// libabsl_synchronization.so, these definitions win for every caller,
// including libgrpc. Memory accesses inside a call (e.g. a Condition evaluated
// on behalf of a waiter while unlocking) are ignored between pre_ and post_,
// as under Abseil's annotations.
//
// The *WithTimeout variants are not redefined: the library implements each by
// calling its *WithDeadline sibling through the PLT, which lands here.
//
// Limits: a mutex held in shared mode across CondVar::Wait or Await is
// announced as released and re-taken in shared mode (tracked per thread).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace {

// Resolves the real definition of the member function whose mangled name is
// `symbol` in the next object after this one (libabsl_synchronization.so).
template <typename Fn>
Fn Real(const char* symbol) {
  void* fn = dlsym(RTLD_NEXT, symbol);
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_mutex_tsan: %s not found: %s\n", symbol, dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

// Mutexes this thread holds in shared mode, so a wait on one of them is
// announced with the right flags.
thread_local std::vector<const void*> shared_held;

unsigned ModeOf(const void* mu) {
  for (const void* held : shared_held) {
    if (held == mu) return __tsan_mutex_read_lock;
  }
  return 0;
}

void ForgetShared(const void* mu) {
  for (auto it = shared_held.begin(); it != shared_held.end(); ++it) {
    if (*it == mu) {
      shared_held.erase(it);
      return;
    }
  }
}

// Announces that a blocking call on `mu` releases it and takes it back.
class ReleasedWhile {
 public:
  explicit ReleasedWhile(void* mu) : mu_(mu), flags_(ModeOf(mu)) {
    __tsan_mutex_pre_unlock(mu_, flags_);
    __tsan_mutex_post_unlock(mu_, flags_);
    __tsan_mutex_pre_lock(mu_, flags_);
  }
  ~ReleasedWhile() { __tsan_mutex_post_lock(mu_, flags_, 0); }
  ReleasedWhile(const ReleasedWhile&) = delete;
  ReleasedWhile& operator=(const ReleasedWhile&) = delete;

 private:
  void* mu_;
  unsigned flags_;
};

}  // namespace

#define WEIGHTD_STR2(x) #x
#define WEIGHTD_STR(x) WEIGHTD_STR2(x)

namespace absl {
ABSL_NAMESPACE_BEGIN

namespace {
// The mangled name of absl::<rest>, e.g. "_ZN4absl7debian35Mutex4LockEv" for
// rest "5Mutex4LockEv" (the inline namespace is Debian's "debian3").
std::string Mangled(const char* rest) {
  const std::string ns = WEIGHTD_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return "_ZN4absl" + std::to_string(ns.size()) + ns + rest;
}
}  // namespace

// Declares `real`, the library's definition of the function being defined.
#define REAL(type, rest) static const auto real = Real<type>(Mangled(rest).c_str())

void Mutex::Lock() {
  REAL(void (*)(Mutex*), "5Mutex4LockEv");
  __tsan_mutex_pre_lock(this, 0);
  real(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLock() {
  REAL(void (*)(Mutex*), "5Mutex10ReaderLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  shared_held.push_back(this);
}

bool Mutex::TryLock() {
  REAL(bool (*)(Mutex*), "5Mutex7TryLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, locked ? __tsan_mutex_try_lock : __tsan_mutex_try_lock_failed,
                         0);
  return locked;
}

bool Mutex::ReaderTryLock() {
  REAL(bool (*)(Mutex*), "5Mutex13ReaderTryLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(
      this, locked ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed, 0);
  if (locked) shared_held.push_back(this);
  return locked;
}

void Mutex::Unlock() {
  REAL(void (*)(Mutex*), "5Mutex6UnlockEv");
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

void Mutex::ReaderUnlock() {
  REAL(void (*)(Mutex*), "5Mutex12ReaderUnlockEv");
  ForgetShared(this);
  __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
}

void Mutex::LockWhen(const Condition& cond) {
  REAL(void (*)(Mutex*, const Condition&), "5Mutex8LockWhenERKNS0_9ConditionE");
  __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  REAL(void (*)(Mutex*, const Condition&), "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this, cond);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  shared_held.push_back(this);
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  REAL(bool (*)(Mutex*, const Condition&, absl::Time),
       "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  REAL(bool (*)(Mutex*, const Condition&, absl::Time),
       "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  const bool met = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  shared_held.push_back(this);
  return met;
}

void Mutex::Await(const Condition& cond) {
  REAL(void (*)(Mutex*, const Condition&), "5Mutex5AwaitERKNS0_9ConditionE");
  ReleasedWhile released(this);
  real(this, cond);
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  REAL(bool (*)(Mutex*, const Condition&, absl::Time),
       "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  ReleasedWhile released(this);
  return real(this, cond, deadline);
}

void CondVar::Wait(Mutex* mu) {
  REAL(void (*)(CondVar*, Mutex*), "7CondVar4WaitEPNS0_5MutexE");
  ReleasedWhile released(mu);
  real(this, mu);
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  REAL(bool (*)(CondVar*, Mutex*, absl::Time),
       "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  ReleasedWhile released(mu);
  return real(this, mu, deadline);
}

ABSL_NAMESPACE_END
}  // namespace absl
