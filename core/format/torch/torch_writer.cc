// WriteTorchZip: the records torch.save(state_dict) writes (torch 1.13's
// layout plus torch >= 2.1's byteorder record).
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/format/pickle/pickler.h"
#include "core/format/torch/torch_file.h"
#include "core/format/zip/zip_writer.h"
#include "core/util/status_macros.h"

namespace weightd {

absl::Status WriteTorchZip(const std::string& path, const StateDict& tensors) {
  // One record per distinct Storage, keyed in order of first use, so views
  // and tied weights stay shared when Python loads the file.
  absl::flat_hash_map<const Storage*, std::string> keys;
  std::vector<const Storage*> storages;
  std::vector<PickleTensor> pickled;
  pickled.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    absl::Status valid = ValidateTensor(tensor, name);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write ", valid.message()));
    }
    const Storage* storage = tensor.storage.get();
    auto [it, inserted] = keys.emplace(storage, std::to_string(storages.size()));
    if (inserted) storages.push_back(storage);
    PickleTensor t;
    t.name = name;
    t.dtype = tensor.dtype;
    t.shape = tensor.shape;
    t.strides = tensor.strides;
    t.storage_offset = tensor.storage_offset;
    t.storage_key = it->second;
    t.storage_numel = static_cast<int64_t>(storage->nbytes / DTypeSize(storage->dtype));
    t.requires_grad = tensor.requires_grad;
    pickled.push_back(std::move(t));
  }

  WEIGHTD_ASSIGN_OR_RETURN(std::unique_ptr<ZipWriter> zip, ZipWriter::Create(path));
  WEIGHTD_RETURN_IF_ERROR(zip->AddRecord("archive/data.pkl", PickleStateDict(pickled)));
  WEIGHTD_RETURN_IF_ERROR(zip->AddRecord("archive/byteorder", "little"));
  for (size_t i = 0; i < storages.size(); ++i) {
    const Storage& s = *storages[i];
    // Whole elements only: the pickle declares nbytes / itemsize of them.
    uint64_t bytes = s.nbytes / DTypeSize(s.dtype) * DTypeSize(s.dtype);
    WEIGHTD_RETURN_IF_ERROR(zip->AddRecord(absl::StrCat("archive/data/", i),
                                           absl::MakeConstSpan(s.data, bytes)));
  }
  WEIGHTD_RETURN_IF_ERROR(zip->AddRecord("archive/version", "3\n"));
  return zip->Finish();
}

}  // namespace weightd
