// Writer for safetensors files, laid out as the reference writer lays them
// out (safetensors/src/tensor.rs: prepare and serialize).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/checkpoint/atomic_file.h"
#include "core/checkpoint/dtype.h"
#include "core/checkpoint/tensor.h"
#include "core/format/safetensors/safetensors.h"
#include "core/format/safetensors/strict_json.h"
#include "core/util/status_macros.h"

namespace weightd {

using internal_safetensors::IsValidUtf8;
using internal_safetensors::JsonQuote;

absl::Status WriteSafetensors(const std::string& path, const StateDict& tensors,
                              const std::vector<std::pair<std::string, std::string>>& metadata) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write safetensors: ", why));
  };
  absl::flat_hash_set<absl::string_view> names;
  for (const auto& [name, tensor] : tensors) {
    if (!IsValidUtf8(name)) return invalid("a tensor name is not valid UTF-8");
    if (name == "__metadata__") return invalid("a tensor is named \"__metadata__\"");
    if (!names.insert(name).second) {
      return invalid(absl::StrCat("duplicate tensor name ", JsonQuote(name)));
    }
    absl::Status valid = ValidateTensor(tensor, name);
    if (!valid.ok()) return invalid(valid.message());
  }
  absl::flat_hash_set<absl::string_view> metadata_keys;
  for (const auto& [key, value] : metadata) {
    if (!IsValidUtf8(key) || !IsValidUtf8(value)) return invalid("metadata is not valid UTF-8");
    if (!metadata_keys.insert(key).second) {
      return invalid(absl::StrCat("duplicate metadata key ", JsonQuote(key)));
    }
  }

  // Largest elements first: with an 8-byte aligned data start every tensor is
  // then aligned to its element size, which typed access to an mmap wants.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return DTypeSize(tensors[a].second.dtype) > DTypeSize(tensors[b].second.dtype);
  });
  std::vector<uint64_t> begin(tensors.size());
  uint64_t offset = 0;
  for (size_t i : order) {
    begin[i] = offset;
    if (__builtin_add_overflow(offset, tensors[i].second.nbytes(), &offset)) {
      return invalid("total size overflows uint64");
    }
  }

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i) {
      if (i > 0) header += ",";
      absl::StrAppend(&header, JsonQuote(metadata[i].first), ":", JsonQuote(metadata[i].second));
    }
    header += "}";
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    if (i > 0 || !metadata.empty()) header += ",";
    absl::StrAppend(&header, JsonQuote(name), ":{\"dtype\":\"", SafetensorsCode(tensor.dtype),
                    "\",\"shape\":[", absl::StrJoin(tensor.shape, ","), "],\"data_offsets\":[",
                    begin[i], ",", begin[i] + tensor.nbytes(), "]}");
  }
  header += "}";
  // The reference writer pads with spaces so that the data starts 8-aligned.
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kSafetensorsMaxHeaderBytes) {
    return invalid(absl::StrCat("header would be ", header.size(), " bytes, over the limit of ",
                                kSafetensorsMaxHeaderBytes));
  }

  WEIGHTD_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file, AtomicFile::Create(path));
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(header.size() >> (8 * i));
  WEIGHTD_RETURN_IF_ERROR(file->Write(absl::Span<const uint8_t>(length, 8)));
  WEIGHTD_RETURN_IF_ERROR(file->Write(header));
  std::vector<uint8_t> scratch;
  for (size_t i : order) {
    WEIGHTD_RETURN_IF_ERROR(file->Write(tensors[i].second.ContiguousBytes(&scratch)));
    scratch.clear();
  }
  return file->Commit();
}

}  // namespace weightd
