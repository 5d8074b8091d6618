#include "core/checkpoint/buffer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/errno_status.h"

namespace weightd {
absl::StatusOr<std::shared_ptr<const Buffer>> Buffer::MapFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(path, "open", errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(path, "stat", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  }
  auto buffer = std::make_shared<Buffer>(Token{});
  buffer->mapped_ = true;
  // Owned from here: the destructor closes it.
  buffer->fd_ = fd;
  buffer->path_ = path;
  buffer->size_ = static_cast<size_t>(st.st_size);
  if (buffer->size_ > 0) {
    void* addr = ::mmap(nullptr, buffer->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) return ErrnoStatus(path, "mmap", errno);
    buffer->data_ = static_cast<const uint8_t*>(addr);
  }
  return std::shared_ptr<const Buffer>(std::move(buffer));
}

std::shared_ptr<const Buffer> Buffer::Own(std::vector<uint8_t> bytes) {
  auto buffer = std::make_shared<Buffer>(Token{});
  buffer->owned_ = std::move(bytes);
  buffer->data_ = buffer->owned_.data();
  buffer->size_ = buffer->owned_.size();
  return buffer;
}

std::shared_ptr<const Buffer> Buffer::Own(std::string bytes) {
  auto buffer = std::make_shared<Buffer>(Token{});
  buffer->owned_string_ = std::move(bytes);
  buffer->data_ = reinterpret_cast<const uint8_t*>(buffer->owned_string_.data());
  buffer->size_ = buffer->owned_string_.size();
  return buffer;
}

std::shared_ptr<const Buffer> Buffer::Borrow(const uint8_t* data, size_t size,
                                             std::shared_ptr<const void> keepalive) {
  auto buffer = std::make_shared<Buffer>(Token{});
  buffer->data_ = data;
  buffer->size_ = size;
  buffer->keepalive_ = std::move(keepalive);
  return buffer;
}

std::shared_ptr<const Buffer> Buffer::Slice(std::shared_ptr<const Buffer> parent,
                                            const uint8_t* data, size_t size) {
  auto buffer = std::make_shared<Buffer>(Token{});
  buffer->data_ = data;
  buffer->size_ = size;
  buffer->mapped_file_ = parent->mapped_file();
  buffer->keepalive_ = std::move(parent);
  return buffer;
}

Buffer::~Buffer() {
  if (mapped_ && data_ != nullptr) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace weightd
