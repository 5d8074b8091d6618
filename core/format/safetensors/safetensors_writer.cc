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

absl::StatusOr<SafetensorsLayout> PlanSafetensors(
    const std::string& path, absl::Span<const TensorDescriptor> tensors,
    const std::vector<std::pair<std::string, std::string>>& metadata) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write safetensors: ", why));
  };
  absl::flat_hash_set<absl::string_view> names;
  std::vector<uint64_t> nbytes(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorDescriptor& t = tensors[i];
    if (!IsValidUtf8(t.name)) return invalid("a tensor name is not valid UTF-8");
    if (t.name == "__metadata__") return invalid("a tensor is named \"__metadata__\"");
    if (!names.insert(t.name).second) {
      return invalid(absl::StrCat("duplicate tensor name ", JsonQuote(t.name)));
    }
    absl::StatusOr<int64_t> numel = CheckedNumel(t.shape);
    if (!numel.ok() ||
        __builtin_mul_overflow(static_cast<uint64_t>(*numel), DTypeSize(t.dtype), &nbytes[i])) {
      return invalid(absl::StrCat("tensor ", JsonQuote(t.name), " has a bad shape ",
                                  ShapeToString(t.shape)));
    }
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
    return DTypeSize(tensors[a].dtype) > DTypeSize(tensors[b].dtype);
  });
  std::vector<uint64_t> begin(tensors.size());
  uint64_t offset = 0;
  for (size_t i : order) {
    begin[i] = offset;
    if (__builtin_add_overflow(offset, nbytes[i], &offset)) {
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
    const TensorDescriptor& t = tensors[i];
    if (i > 0 || !metadata.empty()) header += ",";
    absl::StrAppend(&header, JsonQuote(t.name), ":{\"dtype\":\"", SafetensorsCode(t.dtype),
                    "\",\"shape\":[", absl::StrJoin(t.shape, ","), "],\"data_offsets\":[",
                    begin[i], ",", begin[i] + nbytes[i], "]}");
  }
  header += "}";
  // The reference writer pads with spaces so that the data starts 8-aligned.
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kSafetensorsMaxHeaderBytes) {
    return invalid(absl::StrCat("header would be ", header.size(), " bytes, over the limit of ",
                                kSafetensorsMaxHeaderBytes));
  }
  SafetensorsLayout layout;
  layout.head.resize(8);
  for (int i = 0; i < 8; ++i) layout.head[i] = static_cast<char>(header.size() >> (8 * i));
  layout.head += header;
  layout.offsets = std::move(begin);
  for (uint64_t& o : layout.offsets) o += layout.head.size();
  layout.file_size = layout.head.size() + offset;
  return layout;
}

absl::Status WriteSafetensors(const std::string& path, const StateDict& tensors,
                              const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::vector<TensorDescriptor> descriptors;
  descriptors.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    absl::Status valid = ValidateTensor(tensor, name);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": cannot write safetensors: ", valid.message()));
    }
    descriptors.push_back({name, tensor.dtype, tensor.shape});
  }
  WEIGHTD_ASSIGN_OR_RETURN(SafetensorsLayout layout, PlanSafetensors(path, descriptors, metadata));
  // Written in file order: the offsets ascend along the layout's order.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return layout.offsets[a] < layout.offsets[b]; });

  WEIGHTD_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file, AtomicFile::Create(path));
  WEIGHTD_RETURN_IF_ERROR(file->Write(layout.head));
  std::vector<uint8_t> scratch;
  for (size_t i : order) {
    WEIGHTD_RETURN_IF_ERROR(file->Write(tensors[i].second.ContiguousBytes(&scratch)));
    scratch.clear();
  }
  return file->Commit();
}

}  // namespace weightd
