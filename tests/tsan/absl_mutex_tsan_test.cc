// Runs only in the ThreadSanitizer build. Each test hands plain (non-atomic)
// data between threads under absl::Mutex in one of the ways weightd and gRPC
// do: Lock/Unlock, reader locks, Await, CondVar::Wait and their deadline
// variants. Without tests/tsan/absl_mutex_tsan.cc, Debian's uninstrumented
// Abseil hides these happens-before edges and TSan (halt_on_error=1) fails
// every test with a data race report; with it, none may be reported.
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 2000;

TEST(AbslMutexTsan, LockGuardsACounter) {
  absl::Mutex mu;
  long counter = 0;  // plain memory: only the mutex orders the accesses
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        absl::MutexLock lock(&mu);
        ++counter;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter, long{kThreads} * kRounds);
}

TEST(AbslMutexTsan, ReadersSeeTheWritersData) {
  absl::Mutex mu;
  std::vector<int> data;  // reallocated by the writer, read by readers
  long seen = 0;
  std::thread writer([&] {
    for (int i = 0; i < kRounds; ++i) {
      absl::MutexLock lock(&mu);
      data.push_back(i);
    }
  });
  std::vector<std::thread> readers;
  std::vector<long> sums(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    readers.emplace_back([&, t] {
      for (int i = 0; i < kRounds / 10; ++i) {
        absl::ReaderMutexLock lock(&mu);
        if (!data.empty()) sums[t] += data.back();
        if (mu.ReaderTryLock()) mu.ReaderUnlock();  // shared twice is fine
      }
    });
  }
  writer.join();
  for (auto& reader : readers) reader.join();
  for (long sum : sums) seen += sum;
  EXPECT_EQ(data.size(), kRounds);
  EXPECT_GE(seen, 0);
}

TEST(AbslMutexTsan, AwaitHandsOverAValue) {
  absl::Mutex mu;
  int value = 0;
  bool ready = false;
  std::thread producer([&] {
    absl::SleepFor(absl::Milliseconds(5));
    absl::MutexLock lock(&mu);
    value = 42;
    ready = true;
  });
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&ready));
    EXPECT_EQ(value, 42);
    value = 43;  // written after the handover: must not race the producer
  }
  producer.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(value, 43);
}

TEST(AbslMutexTsan, LockWhenAndTimeoutsHandOverValues) {
  absl::Mutex mu;
  int stage = 0;
  std::thread producer([&] {
    for (int i = 1; i <= 3; ++i) {
      absl::SleepFor(absl::Milliseconds(2));
      absl::MutexLock lock(&mu);
      stage = i;
    }
  });
  struct StageAtLeast {
    const int* stage;
    int want;
    bool Reached() const { return *stage >= want; }
  };
  const StageAtLeast one{&stage, 1}, two{&stage, 2}, three{&stage, 3};
  mu.LockWhen(absl::Condition(&one, &StageAtLeast::Reached));
  EXPECT_GE(stage, 1);
  mu.Unlock();
  EXPECT_TRUE(mu.LockWhenWithTimeout(absl::Condition(&two, &StageAtLeast::Reached),
                                       absl::Seconds(30)));
  EXPECT_GE(stage, 2);
  EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&three, &StageAtLeast::Reached),
                                   absl::Seconds(30)));
  EXPECT_EQ(stage, 3);
  stage = 4;
  mu.Unlock();
  producer.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(stage, 4);
}

TEST(AbslMutexTsan, CondVarHandsOverAQueue) {
  absl::Mutex mu;
  absl::CondVar changed;
  std::vector<int> queue;
  bool done = false;
  long consumed = 0;
  std::thread consumer([&] {
    absl::MutexLock lock(&mu);
    while (true) {
      while (queue.empty() && !done) {
        changed.WaitWithTimeout(&mu, absl::Seconds(30));
      }
      for (int v : queue) consumed += v;
      queue.clear();
      if (done) return;
    }
  });
  for (int i = 1; i <= kRounds; ++i) {
    absl::MutexLock lock(&mu);
    queue.push_back(i);
    changed.Signal();
  }
  {
    absl::MutexLock lock(&mu);
    done = true;
    changed.SignalAll();
  }
  consumer.join();
  EXPECT_EQ(consumed, long{kRounds} * (kRounds + 1) / 2);
}

}  // namespace
