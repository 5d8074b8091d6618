#include "core/format/zip/zip_reader.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/format/zip/crc32.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

constexpr uint32_t kEocdSignature = 0x06054b50;
constexpr uint32_t kEocd64Signature = 0x06064b50;
constexpr uint32_t kEocd64LocatorSignature = 0x07064b50;
constexpr uint32_t kCentralSignature = 0x02014b50;
constexpr uint32_t kLocalSignature = 0x04034b50;
constexpr size_t kEocdSize = 22;
constexpr size_t kEocd64Size = 56;
constexpr size_t kEocd64LocatorSize = 20;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kLocalHeaderSize = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;
// Deflate cannot expand data by more than about 1032:1; a larger declared
// size is a lie we need not allocate for.
constexpr uint64_t kMaxDeflateRatio = 1032;

uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t Le64(const uint8_t* p) {
  return static_cast<uint64_t>(Le32(p)) | (static_cast<uint64_t>(Le32(p + 4)) << 32);
}

// True when [offset, offset + length) lies within [0, limit), overflow-safe.
bool InRange(uint64_t offset, uint64_t length, uint64_t limit) {
  return offset <= limit && length <= limit - offset;
}

std::string MethodName(uint16_t method) {
  switch (method) {
    case 1: return "shrink";
    case 6: return "implode";
    case 9: return "deflate64";
    case 12: return "bzip2";
    case 14: return "lzma";
    case 93: return "zstd";
    case 95: return "xz";
    case 99: return "AES encryption";
    default: return "unknown";
  }
}

// What the end of central directory records say, widened to 64 bits.
struct Directory {
  uint64_t entries = 0;
  uint64_t size = 0;
  uint64_t offset = 0;
  uint64_t end = 0;  // where the directory must end (start of the EOCD records)
};

}  // namespace

absl::Status ZipReader::Error(absl::string_view why) const {
  return absl::DataLossError(absl::StrCat(name_, ": bad zip archive: ", why));
}

absl::StatusOr<ZipReader> ZipReader::Open(std::shared_ptr<const Buffer> file,
                                          std::string name_for_errors,
                                          const ZipReaderOptions& options) {
  if (file == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(name_for_errors, ": no buffer"));
  }
  ZipReader reader(std::move(file), std::move(name_for_errors), options);
  WEIGHTD_RETURN_IF_ERROR(reader.ParseDirectory());
  return reader;
}

absl::Status ZipReader::ParseDirectory() {
  const uint8_t* base = file_->data();
  const uint64_t file_size = file_->size();
  if (file_size < kEocdSize) {
    return Error(absl::StrCat("file is ", file_size,
                              " bytes, too short for an end of central directory record"));
  }
  // The EOCD is the last 22 bytes plus a comment of at most 65535 bytes.
  // Scan backwards for its signature; the comment length must fit the file.
  uint64_t lowest = file_size - kEocdSize > 0xFFFF ? file_size - kEocdSize - 0xFFFF : 0;
  uint64_t eocd = std::numeric_limits<uint64_t>::max();
  for (uint64_t pos = file_size - kEocdSize + 1; pos-- > lowest;) {
    if (Le32(base + pos) == kEocdSignature &&
        pos + kEocdSize + Le16(base + pos + 20) <= file_size) {
      eocd = pos;
      break;
    }
  }
  if (eocd == std::numeric_limits<uint64_t>::max()) {
    return Error("no end of central directory record (truncated or not a zip file)");
  }
  const uint8_t* e = base + eocd;
  uint16_t disk = Le16(e + 4);
  uint16_t cd_disk = Le16(e + 6);
  uint16_t disk_entries = Le16(e + 8);
  Directory dir;
  dir.entries = Le16(e + 10);
  dir.size = Le32(e + 12);
  dir.offset = Le32(e + 16);
  dir.end = eocd;

  // zip64: a locator sits right before the EOCD and points at the EOCD64.
  if (eocd >= kEocd64LocatorSize &&
      Le32(base + eocd - kEocd64LocatorSize) == kEocd64LocatorSignature) {
    const uint8_t* loc = base + eocd - kEocd64LocatorSize;
    uint64_t eocd64 = Le64(loc + 8);
    if (Le32(loc + 16) > 1) return Error("multi-disk zip64 archives are not supported");
    if (!InRange(eocd64, kEocd64Size, eocd - kEocd64LocatorSize)) {
      return Error(absl::StrCat("zip64 end of central directory offset ", eocd64,
                                " is outside the file"));
    }
    const uint8_t* r = base + eocd64;
    if (Le32(r) != kEocd64Signature) {
      return Error("zip64 locator does not point at a zip64 end of central directory");
    }
    if (Le32(r + 16) != 0 || Le32(r + 20) != 0) {
      return Error("multi-disk archives are not supported");
    }
    if (Le64(r + 24) != Le64(r + 32)) return Error("multi-disk archives are not supported");
    dir.entries = Le64(r + 32);
    dir.size = Le64(r + 40);
    dir.offset = Le64(r + 48);
    dir.end = eocd64;
  } else {
    if (disk != 0 || cd_disk != 0 || disk_entries != dir.entries) {
      return Error("multi-disk archives are not supported");
    }
    if (dir.entries == 0xFFFF || dir.size == 0xFFFFFFFF || dir.offset == 0xFFFFFFFF) {
      return Error("zip64 values in the end of central directory but no zip64 locator");
    }
  }

  if (!InRange(dir.offset, dir.size, dir.end)) {
    return Error(absl::StrCat("central directory (offset ", dir.offset, ", ", dir.size,
                              " bytes) lies outside the file (directory must end by ",
                              dir.end, ")"));
  }
  // Each entry takes at least 46 bytes, which bounds the count before any
  // allocation proportional to it.
  if (dir.entries > dir.size / kCentralHeaderSize) {
    return Error(absl::StrCat("central directory of ", dir.size, " bytes cannot hold ",
                              dir.entries, " entries"));
  }
  entries_.reserve(dir.entries);
  index_.reserve(dir.entries);

  const uint8_t* cd = base + dir.offset;
  uint64_t pos = 0;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (!InRange(pos, kCentralHeaderSize, dir.size) || Le32(cd + pos) != kCentralSignature) {
      return Error(absl::StrCat("central directory entry ", i, " is malformed"));
    }
    const uint8_t* h = cd + pos;
    ZipEntry entry;
    entry.flags = Le16(h + 8);
    entry.method = Le16(h + 10);
    entry.crc32 = Le32(h + 16);
    entry.compressed_size = Le32(h + 20);
    entry.size = Le32(h + 24);
    uint16_t name_len = Le16(h + 28);
    uint16_t extra_len = Le16(h + 30);
    uint16_t comment_len = Le16(h + 32);
    uint16_t start_disk = Le16(h + 34);
    entry.local_header_offset = Le32(h + 42);
    uint64_t var_len = uint64_t{name_len} + extra_len + comment_len;
    if (!InRange(pos + kCentralHeaderSize, var_len, dir.size)) {
      return Error(absl::StrCat("central directory entry ", i, " runs past the directory"));
    }
    entry.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_len);

    // zip64 extended information: only the fields whose 32-bit value is
    // saturated are present, in this order (APPNOTE 4.5.3).
    const uint8_t* extra = h + kCentralHeaderSize + name_len;
    size_t x = 0;
    while (x + 4 <= extra_len) {
      uint16_t id = Le16(extra + x);
      uint16_t len = Le16(extra + x + 2);
      if (x + 4 + len > extra_len) break;  // malformed padding: ignored, as zipfile does
      if (id == kZip64ExtraId) {
        const uint8_t* f = extra + x + 4;
        size_t left = len;
        auto take = [&](uint64_t* field) -> bool {
          if (left < 8) return false;
          *field = Le64(f);
          f += 8;
          left -= 8;
          return true;
        };
        if ((entry.size == 0xFFFFFFFF && !take(&entry.size)) ||
            (entry.compressed_size == 0xFFFFFFFF && !take(&entry.compressed_size)) ||
            (entry.local_header_offset == 0xFFFFFFFF && !take(&entry.local_header_offset))) {
          return Error(absl::StrCat("entry \"", entry.name, "\": zip64 extra field too short"));
        }
      }
      x += 4 + size_t{len};
    }
    if (start_disk != 0 && start_disk != 0xFFFF) {
      return Error(absl::StrCat("entry \"", entry.name, "\" is on another disk"));
    }
    if (entry.flags & 0x1) {
      return absl::FailedPreconditionError(
          absl::StrCat(name_, ": zip entry \"", entry.name, "\" is encrypted"));
    }
    // Local header and data precede the central directory.
    if (!InRange(entry.local_header_offset, kLocalHeaderSize, dir.offset) ||
        !InRange(entry.local_header_offset + kLocalHeaderSize, entry.compressed_size,
                 dir.offset)) {
      return Error(absl::StrCat("entry \"", entry.name, "\" (offset ",
                                entry.local_header_offset, ", ", entry.compressed_size,
                                " bytes) lies beyond the data area of the file"));
    }
    if (!index_.emplace(entry.name, entries_.size()).second) {
      return Error(absl::StrCat("duplicate entry name \"", entry.name, "\""));
    }
    entries_.push_back(std::move(entry));
    pos += kCentralHeaderSize + var_len;
  }
  // Entries must not share bytes: overlapping entries are how a
  // non-recursive zip bomb makes one deflated stream count once per entry
  // (and a stored one alias another record). Each entry spans at least its
  // local header and its compressed data.
  std::vector<const ZipEntry*> by_offset;
  by_offset.reserve(entries_.size());
  for (const ZipEntry& e : entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const ZipEntry* a, const ZipEntry* b) {
    return a->local_header_offset < b->local_header_offset;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ZipEntry& a = *by_offset[i - 1];
    const ZipEntry& b = *by_offset[i];
    // Both ends were checked to lie before the central directory above.
    if (a.local_header_offset + kLocalHeaderSize + a.compressed_size > b.local_header_offset) {
      return Error(absl::StrCat("entries \"", a.name, "\" (offset ", a.local_header_offset,
                                ", at least ", kLocalHeaderSize + a.compressed_size,
                                " bytes) and \"", b.name, "\" (offset ", b.local_header_offset,
                                ") overlap"));
    }
  }
  return absl::OkStatus();
}

const ZipEntry* ZipReader::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

absl::StatusOr<uint64_t> ZipReader::DataOffset(const ZipEntry& entry) const {
  const uint64_t file_size = file_->size();
  const uint64_t offset = entry.local_header_offset;
  if (!InRange(offset, kLocalHeaderSize, file_size)) {
    return Error(absl::StrCat("local header of \"", entry.name, "\" is outside the file"));
  }
  // Each storage record's local header sits on a page of its own (torch.save
  // records are megabytes apart), and touching it through the mapping costs
  // a page fault a tensor at load time. pread copies the 30 bytes without
  // mapping the page; the fault, if any, comes when the tensor is read.
  uint8_t copy[kLocalHeaderSize];
  const uint8_t* h = file_->data() + offset;
  if (const Buffer* mapped = file_->mapped_file(); mapped != nullptr && mapped->fd() >= 0) {
    const uint64_t at = static_cast<uint64_t>(h - mapped->data());
    if (::pread(mapped->fd(), copy, sizeof(copy), static_cast<off_t>(at)) ==
        static_cast<ssize_t>(sizeof(copy))) {
      h = copy;
    }
  }
  if (Le32(h) != kLocalSignature) {
    return Error(absl::StrCat("entry \"", entry.name, "\": bad local header signature"));
  }
  // torch.save pads the local extra field so that data starts 64-byte aligned;
  // the lengths here may differ from the central directory's.
  uint64_t data = offset + kLocalHeaderSize + Le16(h + 26) + Le16(h + 28);
  if (!InRange(data, entry.compressed_size, file_size)) {
    return Error(absl::StrCat("data of entry \"", entry.name, "\" (", entry.compressed_size,
                              " bytes at offset ", data, ") runs past the end of the file (",
                              file_size, " bytes)"));
  }
  return data;
}

absl::StatusOr<std::shared_ptr<const Buffer>> ZipReader::Read(const ZipEntry& entry) const {
  WEIGHTD_ASSIGN_OR_RETURN(uint64_t offset, DataOffset(entry));
  const uint8_t* data = file_->data() + offset;
  if (entry.method == kZipStored) {
    if (entry.compressed_size != entry.size) {
      return Error(absl::StrCat("stored entry \"", entry.name, "\" has compressed size ",
                                entry.compressed_size, " != size ", entry.size));
    }
    return Buffer::Slice(file_, data, static_cast<size_t>(entry.size));
  }
  if (entry.method != kZipDeflated) {
    return absl::FailedPreconditionError(
        absl::StrCat(name_, ": zip entry \"", entry.name, "\" uses unsupported compression method ",
                     entry.method, " (", MethodName(entry.method),
                     "); only stored (0) and deflate (8) are supported"));
  }
  if (entry.size > options_.max_inflated_size) {
    return absl::ResourceExhaustedError(
        absl::StrCat(name_, ": zip entry \"", entry.name, "\" inflates to ", entry.size,
                     " bytes, above the limit of ", options_.max_inflated_size));
  }
  if (entry.size / kMaxDeflateRatio > entry.compressed_size + 1) {
    return Error(absl::StrCat("entry \"", entry.name, "\" declares ", entry.size,
                              " bytes from ", entry.compressed_size,
                              " deflated bytes, more than deflate can produce"));
  }

  // The declared size is honest as far as the ratio check can tell, so a
  // small file may still ask for gigabytes (a zip bomb within deflate's
  // ratio): a refused allocation, e.g. under RLIMIT_AS, is an error for
  // this file, not the end of the process.
  std::vector<uint8_t> out;
  try {
    out.resize(static_cast<size_t>(entry.size));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(name_, ": zip entry \"", entry.name, "\" inflates to ", entry.size,
                     " bytes; cannot allocate that much memory"));
  }
  z_stream z;
  std::memset(&z, 0, sizeof(z));
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
    return absl::InternalError(absl::StrCat(name_, ": zlib inflateInit2 failed"));
  }
  // Feed and drain in chunks that fit zlib's 32-bit counters.
  constexpr uint64_t kChunk = uint64_t{1} << 30;
  uint64_t in_left = entry.compressed_size;
  uint64_t out_done = 0;
  const uint8_t* in = data;
  uint8_t overflow_byte = 0;
  bool overflow = false;
  bool ended = false;
  std::string zlib_message;
  for (;;) {
    if (z.avail_in == 0 && in_left > 0) {
      uInt n = static_cast<uInt>(std::min(in_left, kChunk));
      z.next_in = const_cast<Bytef*>(in);
      z.avail_in = n;
      in += n;
      in_left -= n;
    }
    if (z.avail_out == 0) {
      if (out_done < out.size()) {
        uInt n = static_cast<uInt>(std::min<uint64_t>(out.size() - out_done, kChunk));
        z.next_out = out.data() + out_done;
        z.avail_out = n;
        out_done += n;
      } else if (!overflow) {
        // The declared size is used up; one more byte of output means the
        // stream is longer than declared.
        z.next_out = &overflow_byte;
        z.avail_out = 1;
        overflow = true;
      } else {
        break;
      }
    }
    int rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      ended = true;
      break;
    }
    // Z_BUF_ERROR means no progress: more output space is handled above;
    // no more input means a truncated stream.
    if (rc == Z_BUF_ERROR && z.avail_in == 0 && in_left == 0) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      if (z.msg != nullptr) zlib_message = absl::StrCat(" (", z.msg, ")");
      break;
    }
  }
  uint64_t total = z.total_out;  // uLong is 64-bit on our targets
  inflateEnd(&z);
  if (total > entry.size) {
    return Error(absl::StrCat("entry \"", entry.name, "\" inflates to more than its declared ",
                              entry.size, " bytes"));
  }
  if (!ended) {
    return Error(absl::StrCat("entry \"", entry.name,
                              "\": corrupt or truncated deflate stream", zlib_message));
  }
  if (total != entry.size) {
    return Error(absl::StrCat("entry \"", entry.name, "\" inflates to ", total,
                              " bytes but declares ", entry.size));
  }
  return Buffer::Own(std::move(out));
}

absl::Status ZipReader::VerifyCrc(const ZipEntry& entry) const {
  WEIGHTD_ASSIGN_OR_RETURN(std::shared_ptr<const Buffer> bytes, Read(entry));
  const uint32_t crc = Crc32(absl::Span<const uint8_t>(bytes->data(), bytes->size()));
  if (crc != entry.crc32) {
    return Error(absl::StrCat("entry \"", entry.name, "\" fails its CRC-32 check"));
  }
  return absl::OkStatus();
}

}  // namespace weightd
