// Writes uncompressed zip archives laid out as PyTorch's writer lays them
// out: every record stored, its data 64-byte aligned (padding in a local
// extra field), zip64 records when sizes or offsets pass 32 bits.
#ifndef WEIGHTD_CORE_FORMAT_ZIP_ZIP_WRITER_H_
#define WEIGHTD_CORE_FORMAT_ZIP_ZIP_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/checkpoint/atomic_file.h"

namespace weightd {

// Alignment of record data, as caffe2::serialize::kFieldAlignment.
inline constexpr uint64_t kZipDataAlignment = 64;

// Not thread-safe. The destination appears only when Finish() succeeds
// (writes go through AtomicFile); destroying an unfinished writer leaves no
// file behind.
class ZipWriter {
 public:
  static absl::StatusOr<std::unique_ptr<ZipWriter>> Create(const std::string& path);

  // Appends a stored record. Names must be unique and < 64 KiB.
  absl::Status AddRecord(absl::string_view name, absl::Span<const uint8_t> data);
  absl::Status AddRecord(absl::string_view name, absl::string_view data);

  // A stored record of `size` bytes that arrive later, through AppendData:
  // the CRC-32 is computed as they pass, and EndRecord writes it into the
  // local header. No other record may begin before EndRecord.
  absl::Status BeginRecord(absl::string_view name, uint64_t size);
  absl::Status AppendData(absl::Span<const uint8_t> data);
  absl::Status EndRecord();

  // The temporary file written until Finish() (AtomicFile::temp_path).
  const std::string& temp_path() const { return file_->temp_path(); }

  // Writes the central directory and end records, then commits the file.
  absl::Status Finish();

 private:
  struct Record {
    std::string name;
    uint64_t size;
    uint32_t crc32;
    uint64_t offset;
  };

  ZipWriter(std::string path, std::unique_ptr<AtomicFile> file)
      : path_(std::move(path)), file_(std::move(file)) {}

  std::string path_;
  std::unique_ptr<AtomicFile> file_;
  std::vector<Record> records_;
  bool in_record_ = false;
  uint64_t appended_ = 0;  // bytes of the open record so far
  absl::flat_hash_set<std::string> names_;
  bool finished_ = false;
};

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_ZIP_ZIP_WRITER_H_
