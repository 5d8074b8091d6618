// weightctl pull's file writer thread: the receiving thread copies each
// chunk into one of a few reused buffers and goes back to the socket, while
// this thread puts the buffers into the CheckpointStreamWriter (CRC-32 and
// write() into the page cache). Receiving and writing then overlap instead
// of taking turns (bench/RESULTS.md, pull rows). Memory is bounded by the
// buffers: the receiving thread waits for a free one.
#ifndef WEIGHTD_CLIENT_WEIGHTCTL_BACKGROUND_WRITER_H_
#define WEIGHTD_CLIENT_WEIGHTCTL_BACKGROUND_WRITER_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/format/stream_writer.h"

namespace weightd::cli {

class BackgroundWriter {
 public:
  static constexpr size_t kBuffers = 4;
  static constexpr size_t kBufferBytes = size_t{1} << 20;  // a stream chunk

  // `writer` must outlive this; Start() has been called on it.
  explicit BackgroundWriter(CheckpointStreamWriter* writer);
  // Waits for the queue (as Finish, dropping its status).
  ~BackgroundWriter();
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;

  // As CheckpointStreamWriter's, queued in order. Each returns the first
  // error the writer thread met so far (then nothing more is written).
  absl::Status BeginTensor(size_t index);
  absl::Status Write(absl::string_view data);
  absl::Status EndTensor();
  // Waits until everything queued is written; the first error, if any.
  absl::Status Finish();

 private:
  struct Op {
    enum Kind { kBegin, kData, kEnd };
    explicit Op(Kind k) : kind(k) {}
    Kind kind;
    size_t index = 0;               // kBegin
    std::unique_ptr<char[]> bytes;  // kData
    size_t size = 0;                // kData
  };

  void Run();
  // Queues the buffer being filled, if it holds anything.
  void FlushFilling(std::unique_lock<std::mutex>& lock);
  void Push(std::unique_lock<std::mutex>& lock, Op op);

  CheckpointStreamWriter* const writer_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Op> queue_;
  std::vector<std::unique_ptr<char[]>> free_;  // buffers not in use
  std::unique_ptr<char[]> filling_;            // the receiving thread's
  size_t filled_ = 0;
  bool busy_ = false;  // the writer thread holds an op
  bool stop_ = false;
  absl::Status error_;
  std::thread thread_;
};

}  // namespace weightd::cli

#endif  // WEIGHTD_CLIENT_WEIGHTCTL_BACKGROUND_WRITER_H_
