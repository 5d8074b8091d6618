// A small reader for the zip container torch.save writes (and zips in
// general, as far as checkpoints need): stored and deflated entries, zip64.
//
// Why not LibTorch's PyTorchStreamReader: we want zero-copy views into the
// mmap of the file, explicit compression-method checks, and a core that can
// be fuzzed without LibTorch.
#ifndef WEIGHTD_CORE_FORMAT_ZIP_ZIP_READER_H_
#define WEIGHTD_CORE_FORMAT_ZIP_ZIP_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/checkpoint/buffer.h"

namespace weightd {

// Compression methods (APPNOTE 4.4.5).
inline constexpr uint16_t kZipStored = 0;
inline constexpr uint16_t kZipDeflated = 8;

// One central directory entry, sizes already widened from zip64 fields.
struct ZipEntry {
  std::string name;
  uint16_t method = kZipStored;
  uint16_t flags = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;  // uncompressed
  uint32_t crc32 = 0;
  uint64_t local_header_offset = 0;
};

struct ZipReaderOptions {
  // Largest uncompressed size Read() inflates into memory (zip bombs).
  uint64_t max_inflated_size = uint64_t{4} << 30;
};

// Immutable index of a zip file held in a Buffer (usually an mmap).
// Thread-safe: all methods are const. Views returned by Read() keep the file
// buffer alive.
//
// Open() reads only the end of central directory records and the central
// directory; entry data (and each entry's local header) is touched only when
// that entry is read, so indexing a 1 GiB checkpoint reads a few pages.
class ZipReader {
 public:
  // Parses the directory of `file`. `name_for_errors` (usually the path)
  // starts every error message. Malformed archives give DataLoss.
  static absl::StatusOr<ZipReader> Open(std::shared_ptr<const Buffer> file,
                                        std::string name_for_errors,
                                        const ZipReaderOptions& options = {});

  // Entries in central directory order.
  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The entry named exactly `name`, or nullptr.
  const ZipEntry* Find(absl::string_view name) const;

  // File offset of the entry's data (after its local header), checked so
  // that the compressed bytes lie inside the file.
  absl::StatusOr<uint64_t> DataOffset(const ZipEntry& entry) const;

  // The uncompressed bytes of `entry`. Stored entries are a view into the
  // file buffer (zero copy; the CRC is NOT checked, as that would read every
  // byte). Deflated entries are inflated into an owned buffer; the inflated
  // size must equal the declared size and stay under max_inflated_size.
  // Other methods are refused (FailedPrecondition naming the method).
  absl::StatusOr<std::shared_ptr<const Buffer>> Read(const ZipEntry& entry) const;

  // Reads `entry` and compares its CRC-32 with the directory's. Touches
  // every byte of the entry.
  absl::Status VerifyCrc(const ZipEntry& entry) const;

  const std::string& name() const { return name_; }
  const std::shared_ptr<const Buffer>& file() const { return file_; }

 private:
  ZipReader(std::shared_ptr<const Buffer> file, std::string name, ZipReaderOptions options)
      : file_(std::move(file)), name_(std::move(name)), options_(options) {}

  absl::Status Error(absl::string_view why) const;
  absl::Status ParseDirectory();

  std::shared_ptr<const Buffer> file_;
  std::string name_;
  ZipReaderOptions options_;
  std::vector<ZipEntry> entries_;
  absl::flat_hash_map<std::string, size_t> index_;  // name -> entries_ index
};

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_ZIP_ZIP_READER_H_
