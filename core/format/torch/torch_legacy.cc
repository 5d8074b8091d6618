// The legacy torch.save format (torch < 1.6, or
// _use_new_zipfile_serialization=False): a chain of pickles followed by the
// raw storages (torch/serialization.py, _legacy_save):
//   magic number, protocol version, sys_info, the object (persistent ids
//   ('storage', StorageType, key, location, numel, view_metadata)), the list
//   of storage keys, then per key: int64 numel + numel * itemsize bytes.
#include <cstring>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/format/pickle/unpickler.h"
#include "core/format/torch/torch_file_internal.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace torch_internal {
namespace {

// torch.serialization.MAGIC_NUMBER = 0x1950a86a20f9469cfc6c, little-endian.
constexpr unsigned char kMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kProtocolVersion = 1001;

bool IsMagic(const Value& v) {
  if (!v.is(Value::Kind::kBigInt)) return false;
  std::string bytes = v.str();
  // Positive longs may carry a zero sign byte.
  while (bytes.size() > sizeof(kMagic) && bytes.back() == '\0') bytes.pop_back();
  return bytes.size() == sizeof(kMagic) && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0;
}

struct Placeholder {
  std::shared_ptr<Storage> storage;  // filled in once the data section is read
  int64_t numel = 0;
  bool untyped = false;  // the data section counts its size in bytes
};

}  // namespace

absl::StatusOr<ValuePtr> ReadLegacy(const std::shared_ptr<const Buffer>& file,
                                    const std::string& name, DeferredErrors* deferred) {
  const uint8_t* base = file->data();
  const size_t size = file->size();
  if (size < 2 || base[0] != 0x80) {
    return absl::DataLossError(absl::StrCat(
        name, ": not a torch.save file (neither a zip archive nor a pickle stream)"));
  }
  size_t pos = 0;
  StorageLoader no_storages =
      [&](const StorageRequest& r) -> absl::StatusOr<std::shared_ptr<const Storage>> {
    return absl::DataLossError(
        absl::StrCat(name, ": unexpected storage reference in a legacy header pickle"));
  };
  // Unpickles the next pickle in the stream and advances `pos` past it.
  auto next = [&](absl::string_view what,
                  const StorageLoader& loader) -> absl::StatusOr<ValuePtr> {
    size_t consumed = 0;
    WEIGHTD_ASSIGN_OR_RETURN(
        ValuePtr value, Unpickle(absl::MakeConstSpan(base + pos, size - pos),
                                 absl::StrCat(name, ": ", what), loader, {}, &consumed));
    if (consumed == 0 || consumed > size - pos) {
      return absl::InternalError(absl::StrCat(name, ": unpickler consumed ", consumed,
                                              " bytes of ", size - pos));
    }
    pos += consumed;
    return value;
  };

  WEIGHTD_ASSIGN_OR_RETURN(ValuePtr magic, next("magic number", no_storages));
  if (!IsMagic(*magic)) {
    return absl::DataLossError(
        absl::StrCat(name, ": invalid magic number; not a torch.save file or corrupt"));
  }
  WEIGHTD_ASSIGN_OR_RETURN(ValuePtr protocol, next("protocol version", no_storages));
  if (!protocol->is(Value::Kind::kInt) || protocol->int_value() != kProtocolVersion) {
    return absl::DataLossError(absl::StrCat(name, ": unsupported legacy protocol version ",
                                            protocol->is(Value::Kind::kInt)
                                                ? std::to_string(protocol->int_value())
                                                : std::string(protocol->KindName())));
  }
  WEIGHTD_ASSIGN_OR_RETURN(ValuePtr sys_info, next("sys_info", no_storages));
  if (const Value* little = sys_info->is(Value::Kind::kDict) ? sys_info->Find("little_endian")
                                                             : nullptr) {
    if (little->is(Value::Kind::kBool) && !little->bool_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, ": saved on a big-endian machine; only little-endian files are supported"));
    }
  }

  absl::flat_hash_map<std::string, Placeholder> storages;
  StorageLoader loader =
      [&](const StorageRequest& request) -> absl::StatusOr<std::shared_ptr<const Storage>> {
    auto it = storages.find(request.key);
    if (it != storages.end()) {
      if (it->second.storage->dtype != request.dtype) {
        return absl::DataLossError(absl::StrCat(
            name, ": storage \"", request.key, "\" is used as both ",
            DTypeName(it->second.storage->dtype), " and ", DTypeName(request.dtype)));
      }
      return std::shared_ptr<const Storage>(it->second.storage);
    }
    uint64_t bytes;
    if (!CheckedBytes(request.numel, request.dtype, &bytes)) {
      return absl::DataLossError(absl::StrCat(name, ": storage \"", request.key,
                                              "\" has invalid element count ", request.numel));
    }
    auto storage = std::make_shared<Storage>();
    storage->dtype = request.dtype;
    storage->key = request.key;
    storages.emplace(request.key, Placeholder{storage, request.numel, request.untyped});
    return std::shared_ptr<const Storage>(storage);
  };
  WEIGHTD_ASSIGN_OR_RETURN(ValuePtr root, next("object pickle", loader));
  WEIGHTD_ASSIGN_OR_RETURN(ValuePtr keys, next("storage key list", no_storages));
  if (!keys->is(Value::Kind::kList)) {
    return absl::DataLossError(absl::StrCat(name, ": storage key list is a ", keys->KindName()));
  }

  // Storage bytes follow in key-list order; each is a view into the file.
  absl::flat_hash_set<std::string> seen;
  for (const ValuePtr& key_value : keys->items()) {
    if (!key_value->is(Value::Kind::kString)) {
      return absl::DataLossError(
          absl::StrCat(name, ": storage key list holds a ", key_value->KindName()));
    }
    const std::string& key = key_value->str();
    auto it = storages.find(key);
    if (it == storages.end()) {
      // Without a reference we do not know the element size to skip it.
      return absl::DataLossError(
          absl::StrCat(name, ": storage \"", key, "\" is listed but never referenced"));
    }
    if (!seen.insert(key).second) {
      return absl::DataLossError(absl::StrCat(name, ": storage \"", key, "\" is listed twice"));
    }
    Storage& storage = *it->second.storage;
    if (size - pos < 8) {
      return absl::DataLossError(absl::StrCat(name, ": file ends before storage \"", key,
                                              "\" (truncated)"));
    }
    int64_t numel;
    std::memcpy(&numel, base + pos, 8);  // little-endian hosts only, like the data
    pos += 8;
    // An UntypedStorage (torch >= 2.0, _rebuild_tensor_v3) counts bytes.
    if (it->second.untyped) {
      if (numel % static_cast<int64_t>(DTypeSize(storage.dtype)) != 0) {
        return absl::DataLossError(absl::StrCat(name, ": untyped storage \"", key, "\" of ",
                                                numel, " bytes is no whole number of ",
                                                DTypeName(storage.dtype), " elements"));
      }
      numel /= static_cast<int64_t>(DTypeSize(storage.dtype));
    }
    uint64_t bytes;
    if (!CheckedBytes(numel, storage.dtype, &bytes)) {
      return absl::DataLossError(absl::StrCat(name, ": storage \"", key,
                                              "\" has invalid element count ", numel));
    }
    if (bytes > size - pos) {
      return absl::DataLossError(absl::StrCat(name, ": storage \"", key, "\" needs ", bytes,
                                              " bytes at offset ", pos, " but the file has ",
                                              size - pos, " left (truncated)"));
    }
    storage.buffer = Buffer::Slice(file, base + pos, static_cast<size_t>(bytes));
    storage.data = storage.buffer->data();
    storage.nbytes = bytes;
    pos += bytes;
    if (numel < it->second.numel) {
      deferred->errors.push_back(absl::DataLossError(
          absl::StrCat(name, ": storage \"", key, "\" holds ", numel, " elements but the pickle declares ",
                       it->second.numel)));
    }
  }
  for (const auto& [key, placeholder] : storages) {
    if (!seen.contains(key)) {
      return absl::DataLossError(absl::StrCat(
          name, ": storage \"", key, "\" is referenced but missing from the storage list"));
    }
  }
  return root;
}

}  // namespace torch_internal
}  // namespace weightd
