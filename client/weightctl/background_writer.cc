#include "client/weightctl/background_writer.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace weightd::cli {

BackgroundWriter::BackgroundWriter(CheckpointStreamWriter* writer) : writer_(writer) {
  for (size_t i = 0; i < kBuffers; ++i) free_.push_back(std::make_unique<char[]>(kBufferBytes));
  thread_ = std::thread([this] { Run(); });
}

BackgroundWriter::~BackgroundWriter() {
  (void)Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void BackgroundWriter::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_, and nothing left
    Op op = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    const bool failed = !error_.ok();
    lock.unlock();
    absl::Status status;
    if (!failed) {
      switch (op.kind) {
        case Op::kBegin:
          status = writer_->BeginTensor(op.index);
          break;
        case Op::kData:
          status = writer_->Write(
              absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(op.bytes.get()), op.size));
          break;
        case Op::kEnd:
          status = writer_->EndTensor();
          break;
      }
    }
    lock.lock();
    busy_ = false;
    if (error_.ok()) error_ = std::move(status);
    if (op.bytes != nullptr) free_.push_back(std::move(op.bytes));
    changed_.notify_all();
  }
}

void BackgroundWriter::Push(std::unique_lock<std::mutex>& lock, Op op) {
  queue_.push_back(std::move(op));
  changed_.notify_all();
}

void BackgroundWriter::FlushFilling(std::unique_lock<std::mutex>& lock) {
  if (filling_ == nullptr || filled_ == 0) return;
  Op op(Op::kData);
  op.bytes = std::move(filling_);
  op.size = filled_;
  filled_ = 0;
  Push(lock, std::move(op));
}

absl::Status BackgroundWriter::BeginTensor(size_t index) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!error_.ok()) return error_;
  Op op(Op::kBegin);
  op.index = index;
  Push(lock, std::move(op));
  return absl::OkStatus();
}

absl::Status BackgroundWriter::Write(absl::string_view data) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!data.empty()) {
    if (!error_.ok()) return error_;
    if (filling_ == nullptr) {
      changed_.wait(lock, [&] { return !free_.empty() || !error_.ok(); });
      if (!error_.ok()) return error_;
      filling_ = std::move(free_.back());
      free_.pop_back();
    }
    // The copy runs unlocked: the buffer is this thread's until queued.
    const size_t n = std::min(kBufferBytes - filled_, data.size());
    char* to = filling_.get() + filled_;
    lock.unlock();
    std::memcpy(to, data.data(), n);
    lock.lock();
    filled_ += n;
    data.remove_prefix(n);
    if (filled_ == kBufferBytes) FlushFilling(lock);
  }
  return error_;
}

absl::Status BackgroundWriter::EndTensor() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!error_.ok()) return error_;
  FlushFilling(lock);
  Push(lock, Op(Op::kEnd));
  return absl::OkStatus();
}

absl::Status BackgroundWriter::Finish() {
  std::unique_lock<std::mutex> lock(mu_);
  FlushFilling(lock);
  changed_.wait(lock, [&] { return queue_.empty() && !busy_; });
  return error_;
}

}  // namespace weightd::cli
