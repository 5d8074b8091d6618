#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "core/checkpoint/buffer.h"
#include "core/format/zip/zip_reader.h"
#include "core/format/zip/zip_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weightd {
namespace {

using ::testing::HasSubstr;

std::string Python() {
  const char* env = std::getenv("WEIGHTD_PYTHON");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/python3";
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/zip_test_" + std::to_string(::getpid()) + "_" + name;
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Runs a Python snippet; the path of interest is passed as sys.argv[1].
int RunPython(const std::string& code, const std::string& arg) {
  std::string script = TempPath("script.py");
  WriteFileBytes(script, code);
  return std::system((Python() + " " + script + " " + arg).c_str());
}

std::string Str(const Buffer& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

uint32_t Get32(const std::string& s, size_t pos) {
  uint32_t v;
  std::memcpy(&v, s.data() + pos, 4);
  return v;
}
void Set16(std::string* s, size_t pos, uint16_t v) { std::memcpy(&(*s)[pos], &v, 2); }
void Set32(std::string* s, size_t pos, uint32_t v) { std::memcpy(&(*s)[pos], &v, 4); }

// Writes records with ZipWriter and returns the file's bytes.
std::string WriteZip(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string path = TempPath("written.zip");
  auto writer = ZipWriter::Create(path);
  EXPECT_TRUE(writer.ok()) << writer.status();
  for (const auto& [name, data] : records) {
    EXPECT_TRUE((*writer)->AddRecord(name, data).ok());
  }
  EXPECT_TRUE((*writer)->Finish().ok());
  return ReadFileBytes(path);
}

size_t EocdPos(const std::string& zip) { return zip.size() - 22; }
size_t CentralPos(const std::string& zip) { return Get32(zip, EocdPos(zip) + 16); }

absl::StatusOr<ZipReader> OpenBytes(std::string bytes, const ZipReaderOptions& options = {}) {
  return ZipReader::Open(Buffer::Own(std::move(bytes)), "test.zip", options);
}

// A deflated zip written by Python's zipfile module.
std::string PythonDeflatedZip() {
  std::string path = TempPath("deflated.zip");
  int rc = RunPython(
      "import sys, zipfile\n"
      "with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n"
      "    z.writestr('archive/data.pkl', b'weights ' * 1000)\n"
      "    z.writestr('archive/version', b'3\\n')\n",
      path);
  EXPECT_EQ(rc, 0);
  return ReadFileBytes(path);
}

TEST(ZipTest, RoundTripsRecordsInOrder) {
  std::string big(100000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  auto reader = OpenBytes(WriteZip({{"archive/data.pkl", "pickle"}, {"archive/data/0", big},
                                    {"archive/empty", ""}}));
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ(reader->entries().size(), 3u);
  EXPECT_EQ(reader->entries()[0].name, "archive/data.pkl");
  EXPECT_EQ(reader->entries()[2].name, "archive/empty");
  const ZipEntry* entry = reader->Find("archive/data/0");
  ASSERT_NE(entry, nullptr);
  auto data = reader->Read(*entry);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(Str(**data), big);
  EXPECT_TRUE(reader->VerifyCrc(*entry).ok());
  EXPECT_EQ(reader->Find("archive/missing"), nullptr);
}

// A record streamed in pieces (its CRC patched in at EndRecord) is the
// record AddRecord writes, and Python's zipfile checks its CRC on read.
TEST(ZipTest, StreamedRecordIsTheRecordAddRecordWrites) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data += static_cast<char>(i * 7 + i / 255);
  const std::string whole = WriteZip({{"archive/data/0", data}, {"archive/version", "3\n"}});
  std::string path = TempPath("streamed.zip");
  auto writer = ZipWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->BeginRecord("archive/data/0", data.size()).ok());
  for (size_t at = 0; at < data.size(); at += 4099) {
    const std::string piece = data.substr(at, 4099);
    ASSERT_TRUE((*writer)
                    ->AppendData(absl::MakeConstSpan(
                        reinterpret_cast<const uint8_t*>(piece.data()), piece.size()))
                    .ok());
  }
  EXPECT_FALSE((*writer)->BeginRecord("archive/other", 1).ok()) << "a record is still open";
  ASSERT_TRUE((*writer)->EndRecord().ok());
  ASSERT_TRUE((*writer)->AddRecord("archive/version", "3\n").ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  EXPECT_TRUE(ReadFileBytes(path) == whole);
  EXPECT_EQ(RunPython("import sys, zipfile\n"
                      "assert zipfile.ZipFile(sys.argv[1]).testzip() is None\n",
                      path),
            0);
}

TEST(ZipTest, StreamedRecordOfTheWrongSizeIsRefused) {
  auto writer = ZipWriter::Create(TempPath("short.zip"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->BeginRecord("r", 4).ok());
  ASSERT_TRUE(
      (*writer)->AppendData(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>("ab"), 2)).ok());
  EXPECT_FALSE((*writer)->EndRecord().ok());
  EXPECT_FALSE(
      (*writer)->AppendData(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>("cde"), 3)).ok());
  EXPECT_FALSE((*writer)->Finish().ok());
}

TEST(ZipTest, WriterAlignsRecordDataTo64Bytes) {
  auto reader = OpenBytes(WriteZip({{"a", "x"}, {"archive/data/0", "0123456789"}}));
  ASSERT_TRUE(reader.ok()) << reader.status();
  for (const ZipEntry& entry : reader->entries()) {
    auto offset = reader->DataOffset(entry);
    ASSERT_TRUE(offset.ok()) << offset.status();
    EXPECT_EQ(*offset % 64, 0u) << entry.name;
  }
}

TEST(ZipTest, StoredEntryIsAViewIntoTheMappedFile) {
  std::string path = TempPath("mapped.zip");
  WriteFileBytes(path, WriteZip({{"archive/data/0", std::string(4096, 'w')}}));
  auto file = Buffer::MapFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto reader = ZipReader::Open(*file, path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const ZipEntry& entry = reader->entries()[0];
  auto data = reader->Read(entry);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->data(), (*file)->data() + *reader->DataOffset(entry));
  EXPECT_EQ((*data)->size(), 4096u);
}

TEST(ZipTest, ViewKeepsTheFileAliveAfterTheReaderIsGone) {
  std::shared_ptr<const Buffer> data;
  {
    auto reader = OpenBytes(WriteZip({{"r", "kept alive"}}));
    ASSERT_TRUE(reader.ok()) << reader.status();
    data = *reader->Read(reader->entries()[0]);
  }
  EXPECT_EQ(Str(*data), "kept alive");
}

TEST(ZipTest, ReadsDeflatedZipWrittenByPythonZipfile) {
  auto reader = OpenBytes(PythonDeflatedZip());
  ASSERT_TRUE(reader.ok()) << reader.status();
  const ZipEntry* entry = reader->Find("archive/data.pkl");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->method, kZipDeflated);
  EXPECT_LT(entry->compressed_size, entry->size);
  std::string expected;
  for (int i = 0; i < 1000; ++i) expected += "weights ";
  auto data = reader->Read(*entry);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(Str(**data), expected);
  EXPECT_TRUE(reader->VerifyCrc(*entry).ok());
}

TEST(ZipTest, PythonZipfileReadsWhatWeWrite) {
  std::string path = TempPath("for_python.zip");
  WriteFileBytes(path, WriteZip({{"archive/data.pkl", "abc"}, {"archive/data/0", "xyz"}}));
  int rc = RunPython(
      "import sys, zipfile\n"
      "z = zipfile.ZipFile(sys.argv[1])\n"
      "assert z.testzip() is None\n"
      "assert z.namelist() == ['archive/data.pkl', 'archive/data/0'], z.namelist()\n"
      "assert z.read('archive/data/0') == b'xyz'\n",
      path);
  EXPECT_EQ(rc, 0);
}

TEST(ZipTest, WritesAndReadsZip64EndRecordsForManyEntries) {
  // 65535 entries do not fit the 16-bit count: the writer must use zip64.
  std::string path = TempPath("many.zip");
  {
    auto writer = ZipWriter::Create(path);
    ASSERT_TRUE(writer.ok()) << writer.status();
    for (int i = 0; i < 0xFFFF; ++i) {
      ASSERT_TRUE((*writer)->AddRecord(std::to_string(i), std::to_string(i)).ok());
    }
    ASSERT_TRUE((*writer)->Finish().ok());
  }
  auto file = Buffer::MapFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto reader = ZipReader::Open(*file, path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ(reader->entries().size(), 0xFFFFu);
  EXPECT_EQ(Str(**reader->Read(*reader->Find("65534"))), "65534");
  EXPECT_EQ(RunPython("import sys, zipfile\n"
                      "z = zipfile.ZipFile(sys.argv[1])\n"
                      "assert len(z.infolist()) == 65535\n"
                      "assert z.read('65534') == b'65534'\n",
                      path),
            0);
  std::remove(path.c_str());  // 8 MiB
}

TEST(ZipTest, ReadsZip64ExtraFieldInCentralDirectory) {
  // Rewrite the single central entry with saturated sizes and offset and
  // the real values in a zip64 extra field, as writers do past 4 GiB.
  std::string zip = WriteZip({{"n", "zip64 data"}});
  size_t cd = CentralPos(zip);
  std::string central = zip.substr(cd, 46 + 1);
  Set32(&central, 20, 0xFFFFFFFF);
  Set32(&central, 24, 0xFFFFFFFF);
  Set32(&central, 42, 0xFFFFFFFF);
  Set16(&central, 30, 28);
  std::string extra("\x01\x00\x18\x00", 4);
  uint64_t fields[3] = {10, 10, 0};
  extra.append(reinterpret_cast<const char*>(fields), sizeof(fields));
  central += extra;
  std::string eocd = zip.substr(EocdPos(zip));
  Set32(&eocd, 12, static_cast<uint32_t>(central.size()));
  std::string rebuilt = zip.substr(0, cd) + central + eocd;
  auto reader = OpenBytes(rebuilt);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->entries()[0].size, 10u);
  EXPECT_EQ(Str(**reader->Read(reader->entries()[0])), "zip64 data");
}

TEST(ZipTest, RejectsTruncatedFileNamingIt) {
  std::string zip = WriteZip({{"a", "hello"}});
  zip.resize(zip.size() - 10);
  auto reader = OpenBytes(zip);
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reader.status().message(), HasSubstr("test.zip"));
  EXPECT_THAT(reader.status().message(), HasSubstr("end of central directory"));
}

TEST(ZipTest, RejectsFileTooShortForAnyZip) {
  auto reader = OpenBytes("PK");
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reader.status().message(), HasSubstr("test.zip"));
}

TEST(ZipTest, RejectsEocdWithZip64MarkersButNoLocator) {
  std::string zip = WriteZip({{"a", "hello"}});
  Set32(&zip, EocdPos(zip) + 16, 0xFFFFFFFF);
  auto reader = OpenBytes(zip);
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reader.status().message(), HasSubstr("no zip64 locator"));
}

TEST(ZipTest, RejectsCentralDirectoryOutOfRange) {
  std::string zip = WriteZip({{"a", "hello"}});
  Set32(&zip, EocdPos(zip) + 16, 0x7FFFFFF0);
  auto reader = OpenBytes(zip);
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reader.status().message(), HasSubstr("central directory"));
  EXPECT_THAT(reader.status().message(), HasSubstr("outside the file"));
}

TEST(ZipTest, RejectsEntryCountThatCannotFitTheDirectory) {
  std::string zip = WriteZip({{"a", "hello"}});
  Set16(&zip, EocdPos(zip) + 8, 5000);
  Set16(&zip, EocdPos(zip) + 10, 5000);
  auto reader = OpenBytes(zip);
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reader.status().message(), HasSubstr("cannot hold 5000 entries"));
}

TEST(ZipTest, RejectsEntrySizeBeyondTheFile) {
  std::string zip = WriteZip({{"a", "hello"}});
  size_t cd = CentralPos(zip);
  Set32(&zip, cd + 20, 1000000);
  Set32(&zip, cd + 24, 1000000);
  auto reader = OpenBytes(zip);
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reader.status().message(), HasSubstr("\"a\""));
}

TEST(ZipTest, RejectsEntryDataRunningPastTheEndOfTheFile) {
  // A huge local extra length pushes the data start past the file's end.
  std::string zip = WriteZip({{"a", "hello"}});
  Set16(&zip, 28, 0xFFFF);
  auto reader = OpenBytes(zip);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto data = reader->Read(reader->entries()[0]);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), HasSubstr("test.zip"));
  EXPECT_THAT(data.status().message(), HasSubstr("past the end of the file"));
}

// The non-recursive zip bomb's trick: two central entries, one local record.
TEST(ZipTest, RejectsEntriesSharingALocalHeader) {
  std::string zip = WriteZip({{"a", std::string(100, 'x')}, {"b", "y"}});
  size_t second = CentralPos(zip) + 46 + 1;  // after entry "a" (name length 1)
  Set32(&zip, second + 42, 0);               // "b" now points at "a"'s local header
  auto reader = OpenBytes(zip);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reader.status().message(), HasSubstr("overlap"));
}

TEST(ZipTest, RejectsDuplicateNames) {
  std::string zip = WriteZip({{"a", "1"}, {"b", "2"}});
  size_t second = CentralPos(zip) + 46 + 1;
  ASSERT_EQ(zip[second + 46], 'b');
  zip[second + 46] = 'a';
  auto reader = OpenBytes(zip);
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reader.status().message(), HasSubstr("duplicate entry name \"a\""));
}

TEST(ZipTest, RejectsUnsupportedCompressionMethodNamingIt) {
  std::string zip = WriteZip({{"a", "hello"}});
  Set16(&zip, CentralPos(zip) + 10, 12);
  auto reader = OpenBytes(zip);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto data = reader->Read(reader->entries()[0]);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(data.status().message(), HasSubstr("test.zip"));
  EXPECT_THAT(data.status().message(), HasSubstr("method 12 (bzip2)"));
}

TEST(ZipTest, RejectsDeflatedEntryShorterThanDeclared) {
  std::string zip = PythonDeflatedZip();
  Set32(&zip, CentralPos(zip) + 24, 8001);
  auto reader = OpenBytes(zip);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto data = reader->Read(*reader->Find("archive/data.pkl"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), HasSubstr("inflates to 8000 bytes but declares 8001"));
}

TEST(ZipTest, RejectsDeflatedEntryLongerThanDeclared) {
  std::string zip = PythonDeflatedZip();
  Set32(&zip, CentralPos(zip) + 24, 100);
  auto reader = OpenBytes(zip);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto data = reader->Read(*reader->Find("archive/data.pkl"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), HasSubstr("more than its declared 100 bytes"));
}

TEST(ZipTest, RefusesToInflateAboveTheLimit) {
  ZipReaderOptions options;
  options.max_inflated_size = 4096;
  auto reader = OpenBytes(PythonDeflatedZip(), options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto data = reader->Read(*reader->Find("archive/data.pkl"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(data.status().message(), HasSubstr("limit of 4096"));
}

// A zip bomb within deflate's ratio: 768 MiB of zeros in less than 1 MB.
// With less address space than that left, Read fails for this entry
// instead of aborting the process with std::bad_alloc.
TEST(ZipTest, HonestZipBombBeyondAvailableMemoryIsAnError) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers reserve terabytes of address space; RLIMIT_AS cannot apply";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  GTEST_SKIP() << "sanitizers reserve terabytes of address space; RLIMIT_AS cannot apply";
#endif
#endif
  std::string path = TempPath("bomb.zip");
  ASSERT_EQ(RunPython("import sys, zipfile\n"
                      "with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, "
                      "compresslevel=9) as z:\n"
                      "    z.writestr('archive/data/0', bytes(768 << 20))\n",
                      path),
            0);
  auto reader = OpenBytes(ReadFileBytes(path));
  ASSERT_TRUE(reader.ok()) << reader.status();
  const ZipEntry* entry = reader->Find("archive/data/0");
  ASSERT_NE(entry, nullptr);
  ASSERT_LT(entry->compressed_size, 1u << 20);

  long pages = 0;
  std::ifstream("/proc/self/statm") >> pages;
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_AS, &old_limit), 0);
  struct rlimit low = old_limit;
  low.rlim_cur = static_cast<rlim_t>(pages) * sysconf(_SC_PAGESIZE) + (256 << 20);
  ASSERT_EQ(setrlimit(RLIMIT_AS, &low), 0);
  auto data = reader->Read(*entry);
  ASSERT_EQ(setrlimit(RLIMIT_AS, &old_limit), 0);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kResourceExhausted) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr("cannot allocate"));
}

TEST(ZipTest, RejectsDeclaredSizeDeflateCannotProduce) {
  std::string zip = PythonDeflatedZip();
  Set32(&zip, CentralPos(zip) + 24, 0xF0000000);
  auto reader = OpenBytes(zip);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto data = reader->Read(*reader->Find("archive/data.pkl"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), HasSubstr("more than deflate can produce"));
}

TEST(ZipTest, VerifyCrcDetectsCorruptedData) {
  std::string zip = WriteZip({{"a", "hello"}});
  zip[64] = 'j';  // first data byte (64-byte aligned)
  auto reader = OpenBytes(zip);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(Str(**reader->Read(reader->entries()[0])), "jello");
  absl::Status s = reader->VerifyCrc(reader->entries()[0]);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("CRC-32"));
}

TEST(ZipTest, WriterRejectsDuplicateRecordNames) {
  auto writer = ZipWriter::Create(TempPath("dup.zip"));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->AddRecord("x", "1").ok());
  EXPECT_EQ((*writer)->AddRecord("x", "2").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ZipTest, UnfinishedWriterLeavesNoFile) {
  std::string path = TempPath("unfinished.zip");
  std::remove(path.c_str());
  {
    auto writer = ZipWriter::Create(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->AddRecord("x", "1").ok());
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace weightd
