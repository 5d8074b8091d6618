#include "core/format/checkpoint_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/format/safetensors/safetensors.h"
#include "core/format/torch/torch_file.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

// Reads the first bytes only: sniffing must not fault in a large file.
std::string Head(const std::string& path, size_t n) {
  std::string out(n, '\0');
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  ssize_t got = pread(fd, out.data(), n, 0);
  close(fd);
  out.resize(got > 0 ? static_cast<size_t>(got) : 0);
  return out;
}

// safetensors: 8-byte little-endian header size, then a JSON object.
bool LooksLikeSafetensors(const std::string& head) {
  return head.size() >= 9 && head[8] == '{';
}

}  // namespace

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  if (absl::EndsWith(path, ".index.json")) return ReadShardedSafetensors(path);
  std::string head = Head(path, 9);
  if (absl::StartsWith(head, "PK")) return ReadTorchFile(path);
  if (absl::EndsWith(path, ".safetensors") || LooksLikeSafetensors(head)) {
    return ReadSafetensors(path);
  }
  return ReadTorchFile(path);
}

absl::Status CheckOutputFormat(const std::string& path) {
  for (const char* extension : {".safetensors", ".pt", ".pth", ".bin"}) {
    if (absl::EndsWith(path, extension)) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": unknown output format; use .safetensors, or .pt, .pth or .bin (torch.save zip)"));
}

absl::Status WriteCheckpoint(const std::string& path, const StateDict& tensors,
                             const std::vector<std::pair<std::string, std::string>>& metadata) {
  WEIGHTD_RETURN_IF_ERROR(CheckOutputFormat(path));
  if (absl::EndsWith(path, ".safetensors")) return WriteSafetensors(path, tensors, metadata);
  return WriteTorchZip(path, tensors);
}

}  // namespace weightd
