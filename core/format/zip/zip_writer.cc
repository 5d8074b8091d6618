#include "core/format/zip/zip_writer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/format/zip/crc32.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace {

constexpr uint32_t kMax32 = 0xFFFFFFFF;
constexpr uint16_t kMax16 = 0xFFFF;
constexpr uint16_t kVersionDefault = 20;
constexpr uint16_t kVersionZip64 = 45;
constexpr uint16_t kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01: reproducible files
constexpr size_t kLocalHeaderSize = 30;

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xFF));
  out->push_back(static_cast<char>(v >> 8));
}
void Put32(std::string* out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v & 0xFFFF));
  Put16(out, static_cast<uint16_t>(v >> 16));
}
void Put64(std::string* out, uint64_t v) {
  Put32(out, static_cast<uint32_t>(v & kMax32));
  Put32(out, static_cast<uint32_t>(v >> 32));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ZipWriter>> ZipWriter::Create(const std::string& path) {
  WEIGHTD_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file, AtomicFile::Create(path));
  return std::unique_ptr<ZipWriter>(new ZipWriter(path, std::move(file)));
}

absl::Status ZipWriter::AddRecord(absl::string_view name, absl::string_view data) {
  return AddRecord(name, absl::Span<const uint8_t>(
                             reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

absl::Status ZipWriter::AddRecord(absl::string_view name, absl::Span<const uint8_t> data) {
  WEIGHTD_RETURN_IF_ERROR(BeginRecord(name, data.size()));
  WEIGHTD_RETURN_IF_ERROR(AppendData(data));
  return EndRecord();
}

absl::Status ZipWriter::BeginRecord(absl::string_view name, uint64_t size) {
  if (in_record_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": zip record \"", name, "\" begun before the last one ended"));
  }
  if (finished_) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": zip writer already finished"));
  }
  if (name.empty() || name.size() > kMax16) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": zip record name must have 1 to 65535 bytes"));
  }
  if (!names_.insert(std::string(name)).second) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": duplicate zip record \"", name, "\""));
  }
  // The CRC is not known yet: EndRecord patches it into the header.
  Record record{std::string(name), size, 0, file_->offset()};
  const bool zip64 = record.size >= kMax32;

  std::string header;
  Put32(&header, 0x04034b50);
  Put16(&header, zip64 ? kVersionZip64 : kVersionDefault);
  Put16(&header, 0);  // flags
  Put16(&header, 0);  // stored
  Put16(&header, 0);  // time
  Put16(&header, kDosDate);
  Put32(&header, record.crc32);
  Put32(&header, zip64 ? kMax32 : static_cast<uint32_t>(record.size));
  Put32(&header, zip64 ? kMax32 : static_cast<uint32_t>(record.size));
  Put16(&header, static_cast<uint16_t>(name.size()));
  size_t extra_len_pos = header.size();
  Put16(&header, 0);  // extra length, patched below
  header.append(name.data(), name.size());
  if (zip64) {
    Put16(&header, 0x0001);
    Put16(&header, 16);
    Put64(&header, record.size);
    Put64(&header, record.size);
  }
  // Padding extra field "FB" so data starts at a multiple of 64, as
  // caffe2::serialize::PyTorchStreamWriter does (lets readers mmap tensors).
  uint64_t start = record.offset + header.size() + 4;
  uint64_t padding = (kZipDataAlignment - start % kZipDataAlignment) % kZipDataAlignment;
  Put16(&header, 0x4246);  // 'F', 'B'
  Put16(&header, static_cast<uint16_t>(padding));
  header.append(padding, 'Z');
  uint16_t extra_len = static_cast<uint16_t>(header.size() - kLocalHeaderSize - name.size());
  header[extra_len_pos] = static_cast<char>(extra_len & 0xFF);
  header[extra_len_pos + 1] = static_cast<char>(extra_len >> 8);

  WEIGHTD_RETURN_IF_ERROR(file_->Write(header));
  records_.push_back(std::move(record));
  in_record_ = true;
  appended_ = 0;
  return absl::OkStatus();
}

absl::Status ZipWriter::AppendData(absl::Span<const uint8_t> data) {
  if (!in_record_ || data.size() > records_.back().size - appended_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": zip record data outside a record or past its size"));
  }
  Record& record = records_.back();
  record.crc32 = Crc32(data, record.crc32);
  appended_ += data.size();
  return file_->Write(data);
}

absl::Status ZipWriter::EndRecord() {
  if (!in_record_) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": no zip record to end"));
  }
  const Record& record = records_.back();
  if (appended_ != record.size) {
    return absl::FailedPreconditionError(absl::StrCat(
        path_, ": zip record \"", record.name, "\" ended after ", appended_, " of ",
        record.size, " bytes"));
  }
  in_record_ = false;
  std::string crc;
  Put32(&crc, record.crc32);
  // The CRC-32 field of the local header (signature, version, flags,
  // method, time, date: 14 bytes before it).
  return file_->WriteAt(record.offset + 14,
                        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(crc.data()), 4));
}

absl::Status ZipWriter::Finish() {
  if (in_record_) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": zip record left unfinished"));
  }
  if (finished_) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": zip writer already finished"));
  }
  finished_ = true;
  const uint64_t cd_offset = file_->offset();
  std::string cd;
  for (const Record& r : records_) {
    const bool big_size = r.size >= kMax32;
    const bool big_offset = r.offset >= kMax32;
    std::string extra;
    if (big_size || big_offset) {
      std::string fields;
      if (big_size) {
        Put64(&fields, r.size);  // uncompressed
        Put64(&fields, r.size);  // compressed
      }
      if (big_offset) Put64(&fields, r.offset);
      Put16(&extra, 0x0001);
      Put16(&extra, static_cast<uint16_t>(fields.size()));
      extra += fields;
    }
    Put32(&cd, 0x02014b50);
    Put16(&cd, extra.empty() ? kVersionDefault : kVersionZip64);  // made by
    Put16(&cd, extra.empty() ? kVersionDefault : kVersionZip64);  // needed
    Put16(&cd, 0);  // flags
    Put16(&cd, 0);  // stored
    Put16(&cd, 0);  // time
    Put16(&cd, kDosDate);
    Put32(&cd, r.crc32);
    Put32(&cd, big_size ? kMax32 : static_cast<uint32_t>(r.size));
    Put32(&cd, big_size ? kMax32 : static_cast<uint32_t>(r.size));
    Put16(&cd, static_cast<uint16_t>(r.name.size()));
    Put16(&cd, static_cast<uint16_t>(extra.size()));
    Put16(&cd, 0);  // comment
    Put16(&cd, 0);  // disk
    Put16(&cd, 0);  // internal attributes
    Put32(&cd, 0);  // external attributes
    Put32(&cd, big_offset ? kMax32 : static_cast<uint32_t>(r.offset));
    cd += r.name;
    cd += extra;
  }
  const uint64_t cd_size = cd.size();
  const uint64_t count = records_.size();
  const bool zip64 = count >= kMax16 || cd_size >= kMax32 || cd_offset >= kMax32;
  if (zip64) {
    const uint64_t eocd64_offset = cd_offset + cd_size;
    Put32(&cd, 0x06064b50);
    Put64(&cd, 44);  // size of the rest of this record
    Put16(&cd, kVersionZip64);
    Put16(&cd, kVersionZip64);
    Put32(&cd, 0);  // this disk
    Put32(&cd, 0);  // directory disk
    Put64(&cd, count);
    Put64(&cd, count);
    Put64(&cd, cd_size);
    Put64(&cd, cd_offset);
    Put32(&cd, 0x07064b50);
    Put32(&cd, 0);  // disk of the zip64 end record
    Put64(&cd, eocd64_offset);
    Put32(&cd, 1);  // total disks
  }
  Put32(&cd, 0x06054b50);
  Put16(&cd, 0);
  Put16(&cd, 0);
  Put16(&cd, zip64 ? kMax16 : static_cast<uint16_t>(count));
  Put16(&cd, zip64 ? kMax16 : static_cast<uint16_t>(count));
  Put32(&cd, zip64 ? kMax32 : static_cast<uint32_t>(cd_size));
  Put32(&cd, zip64 ? kMax32 : static_cast<uint32_t>(cd_offset));
  Put16(&cd, 0);  // comment
  WEIGHTD_RETURN_IF_ERROR(file_->Write(cd));
  return file_->Commit();
}

}  // namespace weightd
