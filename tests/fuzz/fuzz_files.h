// Helpers for fuzz targets that read files from disk: a private temporary
// directory (removed at exit) and small safetensors files written by hand,
// so the targets need nothing but the fuzzer binary.
#ifndef WEIGHTD_TESTS_FUZZ_FUZZ_FILES_H_
#define WEIGHTD_TESTS_FUZZ_FUZZ_FILES_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace weightd::fuzz {

struct FakeTensor {
  std::string name;
  std::string dtype;  // safetensors spelling: "F32", "BF16"...
  std::vector<int64_t> shape;
  std::string bytes;  // exactly shape x dtype
};

// safetensors bytes for `tensors`, laid out in order (header padded to 8).
inline std::string SafetensorsBytes(const std::vector<FakeTensor>& tensors,
                                    const std::string& metadata_json = "") {
  std::string header = "{";
  if (!metadata_json.empty()) absl::StrAppend(&header, "\"__metadata__\":", metadata_json);
  std::string data;
  for (const FakeTensor& t : tensors) {
    if (header.size() > 1) header += ",";
    absl::StrAppend(&header, "\"", t.name, "\":{\"dtype\":\"", t.dtype, "\",\"shape\":[",
                    absl::StrJoin(t.shape, ","), "],\"data_offsets\":[", data.size(), ",",
                    data.size() + t.bytes.size(), "]}");
    data += t.bytes;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);  // little-endian hosts
  return out + header + data;
}

// Paths to remove at exit, children before their directory.
inline std::vector<std::string>& PathsToRemove() {
  static auto* paths = new std::vector<std::string>;
  return *paths;
}

inline void RemovePaths() {
  auto& paths = PathsToRemove();
  for (auto it = paths.rbegin(); it != paths.rend(); ++it) std::remove(it->c_str());
}

// Registers `path` for removal when the fuzzer exits.
inline void RemoveAtExit(const std::string& path) {
  if (PathsToRemove().empty()) std::atexit(RemovePaths);
  PathsToRemove().push_back(path);
}

// A fresh directory under $TMPDIR, else /dev/shm (targets that write a file
// per input run several times faster on tmpfs), else /tmp; removed at exit.
inline std::string MakeTempDir(const char* tag) {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp != nullptr && *tmp          ? tmp
                     : access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                     : "/tmp";
  std::string pattern = absl::StrCat(base, "/weightd-", tag, "-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) std::abort();
  RemoveAtExit(pattern);
  return pattern;
}

inline void WriteFileOrDie(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    std::abort();
  }
  if (std::fclose(f) != 0) std::abort();
}

// Writes `bytes` to `path` and registers it for removal at exit.
inline void WriteTempFile(const std::string& path, const std::string& bytes) {
  WriteFileOrDie(path, bytes);
  RemoveAtExit(path);
}

}  // namespace weightd::fuzz

#endif  // WEIGHTD_TESTS_FUZZ_FUZZ_FILES_H_
