// Refcounted, immutable byte buffers that tensor data points into.
#ifndef WEIGHTD_CORE_CHECKPOINT_BUFFER_H_
#define WEIGHTD_CORE_CHECKPOINT_BUFFER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace weightd {

// A read-only region of memory: either an mmap of a whole file or an owned
// allocation. Thread-safe: immutable after construction. The memory stays
// valid as long as any shared_ptr to the Buffer is held.
class Buffer {
 public:
  // Maps `path` read-only (MAP_PRIVATE). Reading the mapping faults pages in
  // lazily, so opening a large file reads nothing but what is touched. The
  // file stays open (O_RDONLY, close-on-exec) while the buffer lives, so the
  // same-node path can hand its descriptor to clients (fd()).
  static absl::StatusOr<std::shared_ptr<const Buffer>> MapFile(
      const std::string& path);

  // Takes ownership of `bytes`.
  static std::shared_ptr<const Buffer> Own(std::vector<uint8_t> bytes);
  static std::shared_ptr<const Buffer> Own(std::string bytes);

  // Wraps memory owned by someone else; `keepalive` is held until this
  // buffer is destroyed (e.g. a parent buffer this one is a slice of).
  static std::shared_ptr<const Buffer> Borrow(const uint8_t* data, size_t size,
                                              std::shared_ptr<const Buffer> keepalive) = delete;
  static std::shared_ptr<const Buffer> Borrow(const uint8_t* data, size_t size,
                                              std::shared_ptr<const void> keepalive);
  // A byte range of `parent` (data..data+size must lie inside it), which it
  // keeps alive. Unlike Borrow, the slice remembers the file `parent` maps,
  // if any (mapped_file()).
  static std::shared_ptr<const Buffer> Slice(std::shared_ptr<const Buffer> parent,
                                             const uint8_t* data, size_t size);

  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  absl::Span<const uint8_t> span() const { return {data_, size_}; }
  // True when the bytes are an mmap of a file (zero-copy).
  bool is_mapped() const { return mapped_; }
  // The MapFile buffer whose mapping holds these bytes: this one when
  // is_mapped(), the mapped ancestor of a Slice, else null. Valid while this
  // buffer lives.
  const Buffer* mapped_file() const { return mapped_ ? this : mapped_file_; }
  // Of a MapFile buffer: its open descriptor (read-only) and the path it was
  // opened with; -1 and "" otherwise.
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  // For std::make_shared (one allocation per buffer: a checkpoint makes one
  // slice per storage); only Buffer's factories can name it.
  struct Token {
    explicit Token() = default;
  };

 public:
  explicit Buffer(Token) {}

 private:

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  int fd_ = -1;
  std::string path_;
  const Buffer* mapped_file_ = nullptr;  // kept alive by keepalive_
  std::vector<uint8_t> owned_;
  std::string owned_string_;
  std::shared_ptr<const void> keepalive_;
};

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_BUFFER_H_
