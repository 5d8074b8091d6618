#include "core/format/stream_writer.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/checkpoint/atomic_file.h"
#include "core/format/checkpoint_io.h"
#include "core/format/pickle/pickler.h"
#include "core/format/safetensors/safetensors.h"
#include "core/format/zip/zip_writer.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

// What both formats check: Start once, tensors in order, each one's bytes
// exactly its size. Subclasses write.
class OrderedWriter : public CheckpointStreamWriter {
 public:
  explicit OrderedWriter(std::string path) : path_(std::move(path)) {}

  absl::Status Start(std::vector<TensorDescriptor> tensors) final {
    if (started_) return Misuse("Start called twice");
    started_ = true;
    absl::flat_hash_set<absl::string_view> names;
    sizes_.reserve(tensors.size());
    for (const TensorDescriptor& t : tensors) {
      if (!names.insert(t.name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(path_, ": two tensors are named \"", t.name, "\""));
      }
      absl::StatusOr<int64_t> numel = CheckedNumel(t.shape);
      if (!numel.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path_, ": tensor ", t.name, ": ", numel.status().message()));
      }
      sizes_.push_back(static_cast<uint64_t>(*numel) * DTypeSize(t.dtype));
    }
    tensors_ = std::move(tensors);
    return DoStart();
  }

  absl::Status BeginTensor(size_t index) final {
    if (!started_ || in_tensor_ || index != next_ || index >= tensors_.size()) {
      return Misuse(absl::StrCat("tensor ", index, " out of order"));
    }
    in_tensor_ = true;
    written_ = 0;
    return DoBegin(index);
  }

  absl::Status Write(absl::Span<const uint8_t> bytes) final {
    if (!in_tensor_ || bytes.size() > sizes_[next_] - written_) {
      return Misuse(absl::StrCat("bytes outside tensor ", next_, " or past its end"));
    }
    WEIGHTD_RETURN_IF_ERROR(DoWrite(next_, written_, bytes));
    written_ += bytes.size();
    return absl::OkStatus();
  }

  absl::Status EndTensor() final {
    if (!in_tensor_ || written_ != sizes_[next_]) {
      return Misuse(absl::StrCat("tensor ", next_, " ended after ", written_, " bytes"));
    }
    in_tensor_ = false;
    WEIGHTD_RETURN_IF_ERROR(DoEnd(next_));
    ++next_;
    return absl::OkStatus();
  }

  absl::Status Commit() final {
    if (!started_ || in_tensor_ || next_ != tensors_.size()) {
      return Misuse(absl::StrCat("commit after ", next_, " of ", tensors_.size(), " tensors"));
    }
    return DoCommit();
  }

 protected:
  virtual absl::Status DoStart() = 0;
  virtual absl::Status DoBegin(size_t index) = 0;
  virtual absl::Status DoWrite(size_t index, uint64_t offset, absl::Span<const uint8_t> bytes) = 0;
  virtual absl::Status DoEnd(size_t index) = 0;
  virtual absl::Status DoCommit() = 0;

  absl::Status Misuse(absl::string_view what) const {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": stream writer: ", what));
  }

  const std::string path_;
  std::vector<TensorDescriptor> tensors_;
  std::vector<uint64_t> sizes_;

 private:
  bool started_ = false;
  bool in_tensor_ = false;
  size_t next_ = 0;
  uint64_t written_ = 0;
};

// The header needs every offset, so it goes first; bytes go to their
// tensor's place in the layout, which is not arrival order.
class SafetensorsStreamWriter final : public OrderedWriter {
 public:
  SafetensorsStreamWriter(std::string path, std::unique_ptr<AtomicFile> file)
      : OrderedWriter(std::move(path)), file_(std::move(file)) {}
  const std::string& temp_path() const override { return file_->temp_path(); }

 private:
  absl::Status DoStart() override {
    WEIGHTD_ASSIGN_OR_RETURN(layout_, PlanSafetensors(path_, tensors_));
    return file_->Write(layout_.head);
  }
  absl::Status DoBegin(size_t) override { return absl::OkStatus(); }
  absl::Status DoWrite(size_t index, uint64_t offset, absl::Span<const uint8_t> bytes) override {
    return file_->WriteAt(layout_.offsets[index] + offset, bytes);
  }
  absl::Status DoEnd(size_t) override { return absl::OkStatus(); }
  absl::Status DoCommit() override { return file_->Commit(); }

  std::unique_ptr<AtomicFile> file_;
  SafetensorsLayout layout_;
};

// torch.save's records (as WriteTorchZip writes them, one storage per
// tensor): data.pkl and byteorder first, then data/<i> as tensor i arrives.
class TorchZipStreamWriter final : public OrderedWriter {
 public:
  TorchZipStreamWriter(std::string path, std::unique_ptr<ZipWriter> zip)
      : OrderedWriter(std::move(path)), zip_(std::move(zip)) {}
  const std::string& temp_path() const override { return zip_->temp_path(); }

 private:
  absl::Status DoStart() override {
    std::vector<PickleTensor> pickled;
    pickled.reserve(tensors_.size());
    for (size_t i = 0; i < tensors_.size(); ++i) {
      PickleTensor& t = pickled.emplace_back();
      t.name = tensors_[i].name;
      t.dtype = tensors_[i].dtype;
      t.shape = tensors_[i].shape;
      t.strides = ContiguousStrides(t.shape);
      t.storage_key = std::to_string(i);
      t.storage_numel = static_cast<int64_t>(sizes_[i] / DTypeSize(t.dtype));
    }
    WEIGHTD_RETURN_IF_ERROR(zip_->AddRecord("archive/data.pkl", PickleStateDict(pickled)));
    return zip_->AddRecord("archive/byteorder", "little");
  }
  absl::Status DoBegin(size_t index) override {
    return zip_->BeginRecord(absl::StrCat("archive/data/", index), sizes_[index]);
  }
  absl::Status DoWrite(size_t, uint64_t, absl::Span<const uint8_t> bytes) override {
    return zip_->AppendData(bytes);
  }
  absl::Status DoEnd(size_t) override { return zip_->EndRecord(); }
  absl::Status DoCommit() override {
    WEIGHTD_RETURN_IF_ERROR(zip_->AddRecord("archive/version", "3\n"));
    return zip_->Finish();
  }

  std::unique_ptr<ZipWriter> zip_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointStreamWriter>> CheckpointStreamWriter::Create(
    const std::string& path) {
  WEIGHTD_RETURN_IF_ERROR(CheckOutputFormat(path));
  if (absl::EndsWith(path, ".safetensors")) {
    WEIGHTD_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file, AtomicFile::Create(path));
    return std::make_unique<SafetensorsStreamWriter>(path, std::move(file));
  }
  WEIGHTD_ASSIGN_OR_RETURN(std::unique_ptr<ZipWriter> zip, ZipWriter::Create(path));
  return std::make_unique<TorchZipStreamWriter>(path, std::move(zip));
}

}  // namespace weightd
