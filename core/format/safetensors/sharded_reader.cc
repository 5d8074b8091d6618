// Reader for sharded safetensors checkpoints: an index JSON (as written by
// transformers' save_pretrained) maps each tensor name to a shard file.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/checkpoint/buffer.h"
#include "core/checkpoint/value.h"
#include "core/format/safetensors/safetensors.h"
#include "core/format/safetensors/strict_json.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace weightd {
namespace {

using internal_safetensors::JsonQuote;
using Json = nlohmann::json;

// Indexes are small (one line per tensor); this bounds a hostile one.
constexpr uint64_t kMaxIndexBytes = kSafetensorsMaxHeaderBytes;

absl::Status BadIndex(const std::string& path, absl::string_view why) {
  return absl::DataLossError(absl::StrCat(path, ": invalid safetensors index: ", why));
}

// A shard must be a file beside the index: anything else could make a
// repository read files outside itself.
bool IsPlainFileName(absl::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == absl::string_view::npos && name.find('\0') == absl::string_view::npos;
}

std::string MetadataText(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

}  // namespace

absl::StatusOr<Checkpoint> ReadShardedSafetensors(const std::string& index_path) {
  WEIGHTD_ASSIGN_OR_RETURN(std::shared_ptr<const Buffer> index_file, Buffer::MapFile(index_path));
  if (index_file->size() > kMaxIndexBytes) {
    return BadIndex(index_path, absl::StrCat("index is ", index_file->size(),
                                             " bytes, more than the limit of ", kMaxIndexBytes));
  }
  absl::string_view text(reinterpret_cast<const char*>(index_file->data()), index_file->size());
  if (!internal_safetensors::IsValidUtf8(text)) return BadIndex(index_path, "not valid UTF-8");
  absl::StatusOr<internal_safetensors::StrictJson> json =
      internal_safetensors::ParseStrictJson(text, {"metadata", "weight_map"});
  if (absl::IsAlreadyExists(json.status())) {
    return BadIndex(index_path, absl::StrCat("has a ", json.status().message()));
  }
  if (!json.ok()) {
    return BadIndex(index_path, absl::StrCat("not valid JSON: ", json.status().message()));
  }
  if (!json->value.is_object()) return BadIndex(index_path, "not a JSON object");
  auto weight_map_it = json->value.find("weight_map");
  if (weight_map_it == json->value.end() || !weight_map_it->is_object()) {
    return BadIndex(index_path, "no \"weight_map\" object");
  }

  Checkpoint checkpoint;
  checkpoint.path = index_path;
  checkpoint.format = kFormatSafetensorsSharded;
  auto metadata_it = json->value.find("metadata");
  if (metadata_it != json->value.end() && !metadata_it->is_null()) {
    if (!metadata_it->is_object()) return BadIndex(index_path, "\"metadata\" is not an object");
    for (const std::string& key : json->child_keys["metadata"]) {
      checkpoint.file_metadata.emplace_back(key, MetadataText(metadata_it->find(key).value()));
    }
  }

  // Shards in order of first mention; each is read once.
  std::vector<std::pair<std::string, std::string>> weight_map;  // name -> shard
  absl::flat_hash_map<std::string, absl::string_view> shard_of;
  std::vector<std::string> shard_names;
  absl::flat_hash_set<std::string> seen_shards;
  const Json& map = *weight_map_it;
  for (const std::string& name : json->child_keys["weight_map"]) {
    const Json& shard = map.find(name).value();
    if (!shard.is_string()) {
      return BadIndex(index_path, absl::StrCat("weight_map value of ", JsonQuote(name),
                                               " is not a file name string"));
    }
    const std::string& file = shard.get_ref<const std::string&>();
    if (!IsPlainFileName(file)) {
      return BadIndex(index_path,
                      absl::StrCat("shard ", JsonQuote(file), " of tensor ", JsonQuote(name),
                                   " is not a plain file name in the index's directory "
                                   "(path escape)"));
    }
    if (seen_shards.insert(file).second) shard_names.push_back(file);
    weight_map.emplace_back(name, file);
  }
  for (const auto& [name, file] : weight_map) shard_of[name] = file;

  const size_t slash = index_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : index_path.substr(0, slash + 1);
  absl::flat_hash_map<std::string, TensorRecord> tensors;
  absl::flat_hash_set<std::pair<std::string, std::string>> metadata_seen(
      checkpoint.file_metadata.begin(), checkpoint.file_metadata.end());
  for (const std::string& shard : shard_names) {
    const std::string shard_path = dir + shard;
    absl::StatusOr<Checkpoint> part = ReadSafetensors(shard_path);
    if (!part.ok()) {
      if (absl::IsNotFound(part.status())) {
        return BadIndex(index_path, absl::StrCat("shard ", JsonQuote(shard),
                                                 " is missing: ", part.status().message()));
      }
      return absl::Status(
          part.status().code(),
          absl::StrCat(index_path, ": shard ", JsonQuote(shard), ": ", part.status().message()));
    }
    for (const auto& [key, value] : part->root->entries()) {
      const std::string& name = key->str();
      auto it = shard_of.find(name);
      if (it == shard_of.end()) {
        return BadIndex(index_path,
                        absl::StrCat("shard ", JsonQuote(shard), " holds tensor ", JsonQuote(name),
                                     " that the weight_map does not list"));
      }
      if (it->second != shard) {
        return BadIndex(index_path,
                        absl::StrCat("shard ", JsonQuote(shard), " holds tensor ", JsonQuote(name),
                                     " that the weight_map puts in ", JsonQuote(it->second)));
      }
      tensors.emplace(name, value->tensor());
    }
    for (auto& pair : part->file_metadata) {
      if (metadata_seen.insert(pair).second) checkpoint.file_metadata.push_back(std::move(pair));
    }
  }

  checkpoint.root = Value::Dict();
  for (const auto& [name, shard] : weight_map) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      return BadIndex(index_path, absl::StrCat("tensor ", JsonQuote(name),
                                               " is listed in the weight_map but shard ",
                                               JsonQuote(shard), " does not hold it"));
    }
    WEIGHTD_RETURN_IF_ERROR(
        checkpoint.root->SetItem(Value::String(name), Value::Tensor(std::move(it->second))));
  }
  return checkpoint;
}

}  // namespace weightd
