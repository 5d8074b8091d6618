// Reader for single safetensors files. The checks follow the reference
// implementation (safetensors/src/tensor.rs: read_metadata and validate).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/checkpoint/dtype.h"
#include "core/checkpoint/tensor.h"
#include "core/checkpoint/value.h"
#include "core/format/safetensors/safetensors.h"
#include "core/format/safetensors/strict_json.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace weightd {
namespace {

using internal_safetensors::JsonQuote;
using Json = nlohmann::json;

constexpr absl::string_view kMetadataKey = "__metadata__";
// ValidateTensor's limit; a header asking for more is not a real checkpoint.
constexpr size_t kMaxDims = 64;

absl::Status Corrupt(const std::string& path, absl::string_view why) {
  return absl::DataLossError(absl::StrCat(path, ": invalid safetensors file: ", why));
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

// JSON integers >= 0 parse as number_unsigned; negatives, floats and numbers
// beyond uint64 (which nlohmann turns into floats) are not unsigned.
std::optional<uint64_t> AsUnsigned(const Json& v) {
  if (!v.is_number_unsigned()) return std::nullopt;
  return v.get<uint64_t>();
}

std::string Range(uint64_t begin, uint64_t end) { return absl::StrCat("[", begin, ", ", end, "]"); }

// Parses one header entry. `data_size` is the byte buffer's length.
absl::StatusOr<Entry> ParseEntry(const std::string& path, const std::string& name, const Json& info,
                                 uint64_t data_size) {
  const std::string tensor = absl::StrCat("tensor ", JsonQuote(name), ": ");
  auto fail = [&](absl::string_view why) { return Corrupt(path, absl::StrCat(tensor, why)); };
  if (!info.is_object()) return fail("entry is not a JSON object");
  for (const auto& [key, value] : info.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return fail(absl::StrCat("unknown key ", JsonQuote(key)));
    }
  }
  auto dtype_it = info.find("dtype");
  auto shape_it = info.find("shape");
  auto offsets_it = info.find("data_offsets");
  if (dtype_it == info.end()) return fail("missing \"dtype\"");
  if (shape_it == info.end()) return fail("missing \"shape\"");
  if (offsets_it == info.end()) return fail("missing \"data_offsets\"");

  Entry entry;
  entry.name = name;
  if (!dtype_it->is_string()) return fail("\"dtype\" is not a string");
  const std::string& code = dtype_it->get_ref<const std::string&>();
  std::optional<DType> dtype = DTypeFromSafetensors(code);
  if (!dtype.has_value()) return fail(absl::StrCat("unsupported dtype ", JsonQuote(code)));
  entry.dtype = *dtype;

  if (!shape_it->is_array()) return fail("\"shape\" is not an array");
  if (shape_it->size() > kMaxDims) {
    return fail(absl::StrCat("shape has ", shape_it->size(), " dimensions (at most ", kMaxDims,
                             " supported)"));
  }
  for (const Json& dim : *shape_it) {
    std::optional<uint64_t> d = AsUnsigned(dim);
    if (!d.has_value()) {
      return fail(absl::StrCat("shape dimension ", dim.dump(), " is not a non-negative integer"));
    }
    if (*d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return fail(absl::StrCat("shape dimension ", *d, " does not fit in int64"));
    }
    entry.shape.push_back(static_cast<int64_t>(*d));
  }
  absl::StatusOr<int64_t> numel = CheckedNumel(entry.shape);
  if (!numel.ok()) return fail(numel.status().message());
  uint64_t nbytes;
  if (__builtin_mul_overflow(static_cast<uint64_t>(*numel), DTypeSize(entry.dtype), &nbytes)) {
    return fail(absl::StrCat("shape ", ShapeToString(entry.shape), " of ", code,
                             " has more bytes than uint64 can count"));
  }

  const Json& offsets = *offsets_it;
  std::optional<uint64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = AsUnsigned(offsets[0]);
    end = AsUnsigned(offsets[1]);
  }
  if (!begin.has_value() || !end.has_value()) {
    return fail(absl::StrCat("\"data_offsets\" ", offsets.dump(),
                             " is not [begin, end] with non-negative integers"));
  }
  entry.begin = *begin;
  entry.end = *end;
  if (entry.begin > entry.end) {
    return fail(
        absl::StrCat("data_offsets ", Range(entry.begin, entry.end), " has begin after end"));
  }
  if (entry.end - entry.begin != nbytes) {
    return fail(absl::StrCat("data_offsets ", Range(entry.begin, entry.end), " span ",
                             entry.end - entry.begin, " bytes but shape ",
                             ShapeToString(entry.shape), " of ", code, " needs ", nbytes));
  }
  if (entry.end > data_size) {
    return fail(absl::StrCat("data_offsets ", Range(entry.begin, entry.end),
                             " run past the end of the ", data_size, "-byte data buffer"));
  }
  return entry;
}

absl::Status ParseMetadata(const std::string& path, const Json& metadata,
                           const std::vector<std::string>& keys_in_order,
                           std::vector<std::pair<std::string, std::string>>* out) {
  if (!metadata.is_object()) return Corrupt(path, "\"__metadata__\" is not a JSON object");
  for (const std::string& key : keys_in_order) {
    const Json& value = metadata.find(key).value();
    // The format allows string values only (HashMap<String, String>).
    if (!value.is_string()) {
      return Corrupt(
          path, absl::StrCat("\"__metadata__\" value of ", JsonQuote(key), " is not a string"));
    }
    out->emplace_back(key, value.get<std::string>());
  }
  return absl::OkStatus();
}

// The reference reader requires the ranges, sorted, to tile [0, data_size)
// exactly: no overlaps, no holes, no trailing bytes.
absl::Status CheckTiling(const std::string& path, const std::vector<Entry>& entries,
                         uint64_t data_size) {
  std::vector<const Entry*> sorted;
  sorted.reserve(entries.size());
  for (const Entry& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : sorted) {
    if (e->begin < covered) {
      return Corrupt(path, absl::StrCat("tensor ", JsonQuote(e->name), " (data_offsets ",
                                        Range(e->begin, e->end), ") overlaps tensor ",
                                        JsonQuote(previous->name), " (data_offsets ",
                                        Range(previous->begin, previous->end), ")"));
    }
    if (e->begin > covered) {
      return Corrupt(
          path, absl::StrCat("hole in the data buffer: no tensor covers bytes [", covered, ", ",
                             e->begin, ") before tensor ", JsonQuote(e->name)));
    }
    covered = e->end;
    previous = e;
  }
  if (covered != data_size) {
    return Corrupt(path, absl::StrCat("hole in the data buffer: tensors cover ", covered,
                                      " bytes but the file holds ", data_size,
                                      " data bytes after the header"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Checkpoint> ReadSafetensorsBuffer(std::shared_ptr<const Buffer> file,
                                                 const std::string& path) {
  const uint64_t size = file->size();
  if (size < 8) {
    return Corrupt(path,
                   absl::StrCat("file is ", size, " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | file->data()[i];
  if (header_size > kSafetensorsMaxHeaderBytes) {
    return Corrupt(path, absl::StrCat("header length ", header_size, " exceeds the limit of ",
                                      kSafetensorsMaxHeaderBytes, " bytes"));
  }
  if (header_size > size - 8) {
    return Corrupt(path, absl::StrCat("header length ", header_size,
                                      " runs past the end of the file (", size, " bytes)"));
  }
  absl::string_view header(reinterpret_cast<const char*>(file->data()) + 8, header_size);
  if (!internal_safetensors::IsValidUtf8(header)) {
    return Corrupt(path, "header is not valid UTF-8");
  }
  // As the reference reader (serde_json): JSON whitespace may pad the object
  // on either side (safetensors/src/tensor.rs test_whitespace_leading_padded_header:
  // writers may pad to align the data to a page).
  const size_t first = header.find_first_not_of(" \t\n\r");
  if (first == absl::string_view::npos || header[first] != '{') {
    return Corrupt(path, "header is not a JSON object (does not start with '{')");
  }
  absl::StatusOr<internal_safetensors::StrictJson> json =
      internal_safetensors::ParseStrictJson(header, {std::string(kMetadataKey)});
  if (absl::IsAlreadyExists(json.status())) {
    // Other readers keep the first or the last: a repeated name is ambiguous.
    return Corrupt(path, absl::StrCat("header has a ", json.status().message()));
  }
  if (!json.ok()) {
    return Corrupt(path, absl::StrCat("header is not valid JSON: ", json.status().message()));
  }
  if (!json->value.is_object()) return Corrupt(path, "header is not a JSON object");

  const uint64_t data_size = size - 8 - header_size;
  const uint8_t* data = file->data() + 8 + header_size;
  Checkpoint checkpoint;
  checkpoint.path = path;
  checkpoint.format = kFormatSafetensors;
  std::vector<Entry> entries;
  entries.reserve(json->top_level_keys.size());
  for (const std::string& key : json->top_level_keys) {
    const Json& value = json->value.find(key).value();
    if (key == kMetadataKey) {
      // Option<HashMap<String, String>> in the reference: null is no metadata.
      if (value.is_null()) continue;
      WEIGHTD_RETURN_IF_ERROR(
          ParseMetadata(path, value, json->child_keys[key], &checkpoint.file_metadata));
      continue;
    }
    WEIGHTD_ASSIGN_OR_RETURN(Entry entry, ParseEntry(path, key, value, data_size));
    entries.push_back(std::move(entry));
  }
  WEIGHTD_RETURN_IF_ERROR(CheckTiling(path, entries, data_size));

  checkpoint.root = Value::Dict();
  for (Entry& entry : entries) {
    auto storage = std::make_shared<Storage>();
    storage->dtype = entry.dtype;
    storage->buffer = file;
    storage->data = data + entry.begin;
    storage->nbytes = entry.end - entry.begin;
    storage->key = entry.name;
    TensorRecord tensor;
    tensor.dtype = entry.dtype;
    tensor.strides = ContiguousStrides(entry.shape);
    tensor.shape = std::move(entry.shape);
    tensor.storage = std::move(storage);
    absl::Status valid = ValidateTensor(tensor, entry.name);
    if (!valid.ok()) return Corrupt(path, valid.message());
    WEIGHTD_RETURN_IF_ERROR(
        checkpoint.root->SetItem(Value::String(entry.name), Value::Tensor(std::move(tensor))));
  }
  return checkpoint;
}

absl::StatusOr<Checkpoint> ReadSafetensors(const std::string& path) {
  WEIGHTD_ASSIGN_OR_RETURN(std::shared_ptr<const Buffer> file, Buffer::MapFile(path));
  return ReadSafetensorsBuffer(std::move(file), path);
}

}  // namespace weightd
