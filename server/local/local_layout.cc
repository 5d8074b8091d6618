#include "server/local/local_layout.h"

#include <fcntl.h>
#include <xxhash.h>

#include <cerrno>
#include <filesystem>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/ipc/sealed_memfd.h"
#include "core/util/errno_status.h"
#include "server/cache/dtype_cast.h"

namespace weightd {
namespace {

uint64_t AlignUp(uint64_t n) { return (n + kMemfdAlignment - 1) / kMemfdAlignment * kMemfdAlignment; }

std::string RelativeName(const std::string& path, const std::string& repository) {
  namespace fs = std::filesystem;
  const fs::path file = fs::path(path).lexically_normal();
  if (!repository.empty()) {
    const fs::path relative = file.lexically_relative(fs::path(repository).lexically_normal());
    if (!relative.empty() && *relative.begin() != "..") return relative.string();
  }
  return file.filename().string();
}

// The mapped file holding `record`'s bytes when they can be handed out as
// they are: contiguous, in the dtype sent, inside a file the server keeps
// open. Null otherwise.
const Buffer* DirectFile(const TensorRecord& record, DType send_dtype) {
  if (send_dtype != record.dtype || !record.is_contiguous() || record.storage == nullptr ||
      record.storage->buffer == nullptr) {
    return nullptr;
  }
  const Buffer* file = record.storage->buffer->mapped_file();
  if (file == nullptr || file->fd() < 0) return nullptr;
  const uint8_t* data = record.data();
  if (record.nbytes() > 0 &&
      (data < file->data() || static_cast<uint64_t>(data - file->data()) > file->size() ||
       record.nbytes() > file->size() - static_cast<uint64_t>(data - file->data()))) {
    return nullptr;  // cannot happen for a validated tensor; the memfd is safe anyway
  }
  return file;
}

}  // namespace

absl::StatusOr<LocalLayout> BuildLocalLayout(const StateDictView& view, const FetchPlan& plan,
                                             const LocalLayoutOptions& options) {
  LocalLayout layout;
  absl::flat_hash_map<const Buffer*, uint32_t> file_index;
  std::vector<size_t> in_memfd;  // tensor indexes, in order
  uint64_t memfd_size = 0;
  for (const PlannedTensor& planned : plan.tensors) {
    const TensorRecord& record = view.tensors()[planned.index].second;
    LocalTensorOut& t = layout.tensors.emplace_back();
    t.name = planned.name;
    t.source = planned.source;
    t.dtype = planned.send_dtype;
    t.shape = record.shape;
    t.nbytes = planned.send_bytes;
    const Buffer* file = DirectFile(record, planned.send_dtype);
    if (file == nullptr) {
      t.location.offset = memfd_size;
      memfd_size = AlignUp(memfd_size + t.nbytes);
      in_memfd.push_back(layout.tensors.size() - 1);
      continue;
    }
    auto [it, added] = file_index.try_emplace(file, static_cast<uint32_t>(layout.files.size()));
    if (added) {
      LocalFileOut& out = layout.files.emplace_back();
      out.kind = "checkpoint";
      out.name = RelativeName(file->path(), options.repository);
      out.size = file->size();
      // A dup of the file the snapshot maps: the same inode, whatever
      // happens to the path later.
      out.fd.reset(::fcntl(file->fd(), F_DUPFD_CLOEXEC, 0));
      if (!out.fd.valid()) return ErrnoStatus(file->path(), "dup", errno);
    }
    t.location.file = it->second;
    t.location.offset = static_cast<uint64_t>(record.data() - file->data());
    if (options.checksums) t.checksum = view.Checksum(planned.index);
  }
  if (in_memfd.empty()) return layout;

  const uint32_t memfd_index = static_cast<uint32_t>(layout.files.size());
  absl::StatusOr<MemfdWriter> writer = MemfdWriter::Create("weightd-local", memfd_size);
  if (!writer.ok()) return writer.status();
  for (size_t i : in_memfd) {
    LocalTensorOut& t = layout.tensors[i];
    const PlannedTensor& planned = plan.tensors[i];
    const TensorRecord& record = view.tensors()[planned.index].second;
    t.location.file = memfd_index;
    std::vector<uint8_t> strided;
    absl::Span<const uint8_t> row_major = record.ContiguousBytes(&strided);
    std::vector<uint8_t> cast;
    absl::Span<const uint8_t> bytes = row_major;
    if (planned.send_dtype != record.dtype) {
      absl::Status status = CastBytes(row_major, record.dtype, planned.send_dtype, &cast);
      if (!status.ok()) {
        return absl::Status(status.code(),
                            absl::StrCat("tensor \"", planned.source, "\": ", status.message()));
      }
      bytes = absl::Span<const uint8_t>(cast.data(), cast.size());
    }
    if (bytes.size() != t.nbytes) {
      return absl::InternalError(absl::StrCat("tensor \"", planned.source, "\": ", bytes.size(),
                                              " bytes, planned ", t.nbytes));
    }
    absl::Status written = writer->Write(t.location.offset, bytes);
    if (!written.ok()) return written;
    if (options.checksums) t.checksum = XXH64(bytes.data(), bytes.size(), 0);
    layout.memfd_bytes += bytes.size();
  }
  LocalFileOut& out = layout.files.emplace_back();
  out.kind = "memfd";
  out.name = "memfd";
  out.size = memfd_size;
  absl::StatusOr<UniqueFd> sealed = writer->Seal();
  if (!sealed.ok()) return sealed.status();
  out.fd = *std::move(sealed);
  return layout;
}

}  // namespace weightd
