#include "core/format/torch/torch_file.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/format/pickle/unpickler.h"
#include "core/format/torch/torch_file_internal.h"
#include "core/format/zip/zip_reader.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace torch_internal {
namespace {

// Where a node sits below the root, as a chain of parts on the C++ stack:
// the dotted text is built only for an error message, not for every node.
struct PathPart {
  const PathPart* parent;
  const Value* key = nullptr;  // a dict key, else
  size_t index = 0;            // a list/tuple/set index, unless
  const char* literal = nullptr;
};

std::string PartText(const PathPart& part) {
  if (part.literal != nullptr) return part.literal;
  if (part.key == nullptr) return std::to_string(part.index);
  return part.key->is(Value::Kind::kString) ? part.key->str() : part.key->KeyText();
}

// "a.b.0"; an empty part adds no dot before the next one.
std::string PathText(const PathPart* part) {
  if (part == nullptr) return "";
  std::string parent = PathText(part->parent);
  std::string text = PartText(*part);
  return parent.empty() ? text : absl::StrCat(parent, ".", text);
}

absl::Status ValidateNode(const Value& node, const PathPart* path, const std::string& name) {
  switch (node.kind()) {
    case Value::Kind::kTensor: {
      // The common case: no path text for a tensor that validates.
      absl::Status s = ValidateTensor(node.tensor(), "<root>");
      if (s.ok()) return s;
      std::string text = PathText(path);
      s = ValidateTensor(node.tensor(), text.empty() ? "<root>" : text);
      return absl::DataLossError(absl::StrCat(name, ": ", s.message()));
    }
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kSet:
      for (size_t i = 0; i < node.items().size(); ++i) {
        const PathPart part{path, nullptr, i};
        WEIGHTD_RETURN_IF_ERROR(ValidateNode(*node.items()[i], &part, name));
      }
      return absl::OkStatus();
    case Value::Kind::kObject: {  // attributes are named as if the state were the object
      const PathPart args{path, nullptr, 0, "<args>"};
      WEIGHTD_RETURN_IF_ERROR(ValidateNode(*node.object_args(), &args, name));
      return ValidateNode(*node.object_state(), path, name);
    }
    case Value::Kind::kDict:
      for (const auto& [key, value] : node.entries()) {
        const PathPart part{path, key.get()};
        WEIGHTD_RETURN_IF_ERROR(ValidateNode(*value, &part, name));
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

}  // namespace

bool CheckedBytes(int64_t numel, DType dtype, uint64_t* bytes) {
  if (numel < 0) return false;
  return !__builtin_mul_overflow(static_cast<uint64_t>(numel), DTypeSize(dtype), bytes);
}

absl::Status ValidateTree(const Value& root, const std::string& name,
                          const DeferredErrors& deferred) {
  WEIGHTD_RETURN_IF_ERROR(ValidateNode(root, nullptr, name));
  if (!deferred.errors.empty()) return deferred.errors.front();
  return absl::OkStatus();
}

}  // namespace torch_internal

namespace {

using torch_internal::CheckedBytes;
using torch_internal::DeferredErrors;

// The zip format: <prefix>/data.pkl holds the object, <prefix>/data/<key> the
// raw bytes of each storage (torch >= 1.6).
absl::StatusOr<ValuePtr> ReadZip(const std::shared_ptr<const Buffer>& file,
                                 const std::string& name, DeferredErrors* deferred) {
  WEIGHTD_ASSIGN_OR_RETURN(ZipReader zip, ZipReader::Open(file, name));
  // The archive folder is "archive" for torch >= 1.8 and the file's stem for
  // older writers; accept any single folder holding data.pkl.
  std::string prefix;
  int found = 0;
  for (const ZipEntry& entry : zip.entries()) {
    absl::string_view n = entry.name;
    size_t slash = n.find('/');
    if (slash != absl::string_view::npos && slash > 0 && n.substr(slash) == "/data.pkl") {
      prefix = std::string(n.substr(0, slash));
      ++found;
    }
  }
  if (found == 0) {
    return absl::DataLossError(
        absl::StrCat(name, ": zip archive has no <folder>/data.pkl record; not a torch.save file"));
  }
  if (found > 1) {
    return absl::DataLossError(
        absl::StrCat(name, ": zip archive has ", found, " data.pkl records; expected one"));
  }
  if (zip.Find(prefix + "/constants.pkl") != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, ": a TorchScript archive (torch.jit.save), not a torch.save file; "
              "save the module's state_dict() with torch.save instead"));
  }
  if (const ZipEntry* order = zip.Find(prefix + "/byteorder")) {
    WEIGHTD_ASSIGN_OR_RETURN(std::shared_ptr<const Buffer> bytes, zip.Read(*order));
    absl::string_view value(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    if (value == "big") {
      return absl::FailedPreconditionError(
          absl::StrCat(name, ": saved on a big-endian machine (", prefix,
                       "/byteorder is \"big\"); only little-endian files are supported"));
    }
    if (value != "little") {
      return absl::DataLossError(absl::StrCat(name, ": unknown byte order \"",
                                              absl::CHexEscape(value), "\""));
    }
  }
  const ZipEntry* pkl = zip.Find(prefix + "/data.pkl");
  WEIGHTD_ASSIGN_OR_RETURN(std::shared_ptr<const Buffer> pickle, zip.Read(*pkl));

  absl::flat_hash_map<std::string, std::shared_ptr<const Storage>> storages;
  StorageLoader loader =
      [&](const StorageRequest& request) -> absl::StatusOr<std::shared_ptr<const Storage>> {
    auto it = storages.find(request.key);
    if (it != storages.end()) {
      if (it->second->dtype != request.dtype) {
        return absl::DataLossError(absl::StrCat(
            name, ": storage \"", request.key, "\" is used as both ",
            DTypeName(it->second->dtype), " and ", DTypeName(request.dtype)));
      }
      return it->second;
    }
    std::string record = absl::StrCat(prefix, "/data/", request.key);
    const ZipEntry* entry = zip.Find(record);
    if (entry == nullptr) {
      return absl::DataLossError(
          absl::StrCat(name, ": storage record \"", record, "\" is missing"));
    }
    uint64_t declared;
    if (!CheckedBytes(request.numel, request.dtype, &declared)) {
      return absl::DataLossError(absl::StrCat(name, ": storage \"", request.key,
                                              "\" has invalid element count ", request.numel));
    }
    WEIGHTD_ASSIGN_OR_RETURN(std::shared_ptr<const Buffer> bytes, zip.Read(*entry));
    auto storage = std::make_shared<Storage>();
    storage->dtype = request.dtype;
    storage->buffer = bytes;
    storage->data = bytes->data();
    storage->nbytes = declared;
    if (bytes->size() < declared) {
      // Tensors reaching past the record fail validation naming themselves;
      // this error stands if none does.
      storage->nbytes = bytes->size();
      deferred->errors.push_back(absl::DataLossError(absl::StrCat(
          name, ": storage record \"", record, "\" holds ", bytes->size(), " bytes but ",
          request.numel, " ", DTypeName(request.dtype), " elements need ", declared)));
    }
    storage->key = std::move(record);
    storages.emplace(request.key, storage);
    return std::shared_ptr<const Storage>(std::move(storage));
  };
  return Unpickle(pickle->span(), absl::StrCat(name, ": ", pkl->name), loader);
}

// The tar format torch.save used before 0.4 ("ustar" magic at offset 257).
bool IsTar(const Buffer& file) {
  return file.size() >= 262 &&
         absl::string_view(reinterpret_cast<const char*>(file.data()) + 257, 5) == "ustar";
}

}  // namespace

absl::StatusOr<Checkpoint> ReadTorchBuffer(std::shared_ptr<const Buffer> file, std::string name) {
  if (file == nullptr) return absl::InvalidArgumentError(absl::StrCat(name, ": no buffer"));
  absl::string_view head(reinterpret_cast<const char*>(file->data()),
                         std::min<size_t>(file->size(), 4));
  Checkpoint checkpoint;
  DeferredErrors deferred;
  if (head == absl::string_view("PK\x03\x04", 4)) {
    checkpoint.format = kFormatTorchZip;
    WEIGHTD_ASSIGN_OR_RETURN(checkpoint.root, ReadZip(file, name, &deferred));
  } else if (IsTar(*file)) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": tar-based torch.save format (torch < 0.4) is not supported; "
                           "load and re-save it with a newer torch"));
  } else {
    checkpoint.format = kFormatTorchLegacy;
    WEIGHTD_ASSIGN_OR_RETURN(checkpoint.root,
                             torch_internal::ReadLegacy(file, name, &deferred));
  }
  WEIGHTD_RETURN_IF_ERROR(torch_internal::ValidateTree(*checkpoint.root, name, deferred));
  checkpoint.path = std::move(name);
  return checkpoint;
}

absl::StatusOr<Checkpoint> ReadTorchFile(const std::string& path) {
  WEIGHTD_ASSIGN_OR_RETURN(std::shared_ptr<const Buffer> file, Buffer::MapFile(path));
  return ReadTorchBuffer(std::move(file), path);
}

}  // namespace weightd
