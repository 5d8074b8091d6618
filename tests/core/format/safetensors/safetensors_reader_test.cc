// Hand-built headers: one test per validation rule of the reader.
#include <cstdint>
#include <string>

#include "core/checkpoint/buffer.h"
#include "core/format/safetensors/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weightd {
namespace {

using ::testing::HasSubstr;

constexpr char kPath[] = "bad.safetensors";

std::string LittleEndian64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out;
}

// A file with `header` (padded with spaces to 8 bytes) and `data_size` bytes.
std::string File(std::string header, size_t data_size) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return LittleEndian64(header.size()) + header + std::string(data_size, '\x01');
}

absl::StatusOr<Checkpoint> Read(std::string bytes) {
  return ReadSafetensorsBuffer(Buffer::Own(std::move(bytes)), kPath);
}

// Expects a DataLoss error naming the file and containing `reason`.
void ExpectCorrupt(const absl::StatusOr<Checkpoint>& result, const std::string& reason) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(kPath));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(reason));
}

std::string F32Entry(const std::string& shape, const std::string& offsets) {
  return "{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

TEST(SafetensorsReaderTest, ReadsHandBuiltFileInHeaderOrder) {
  // Header order differs from offset order; the reader keeps header order.
  absl::StatusOr<Checkpoint> c = Read(
      File("{\"b\":" + F32Entry("[2]", "[4,12]") + ",\"a\":" + F32Entry("[]", "[0,4]") + "}", 12));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->root->entries().size(), 2u);
  EXPECT_EQ(c->root->entries()[0].first->str(), "b");
  EXPECT_EQ(c->root->entries()[1].first->str(), "a");
  EXPECT_EQ(c->format, kFormatSafetensors);
  const TensorRecord& b = c->root->entries()[0].second->tensor();
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(b.strides, (std::vector<int64_t>{1}));
  EXPECT_EQ(b.storage->nbytes, 8u);
  EXPECT_EQ(b.storage->key, "b");
}

TEST(SafetensorsReaderTest, AcceptsUnpaddedHeader) {
  std::string header = "{\"a\":" + F32Entry("[1]", "[0,4]") + "}";
  std::string bytes = LittleEndian64(header.size()) + header + std::string(4, '\0');
  ASSERT_NE(header.size() % 8, 0u);
  EXPECT_TRUE(Read(bytes).ok());
}

TEST(SafetensorsReaderTest, AcceptsFileWithNoTensors) {
  absl::StatusOr<Checkpoint> c = Read(File("{}", 0));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->root->entries().empty());
}

TEST(SafetensorsReaderTest, RejectsFileShorterThanHeaderLength) {
  ExpectCorrupt(Read("\x08\x00\x00"), "shorter than the 8-byte header length");
}

TEST(SafetensorsReaderTest, RejectsHeaderLongerThanTheLimit) {
  // No allocation of 100 MB happens: the length is refused before anything.
  ExpectCorrupt(Read(LittleEndian64(100'000'001) + "{}"), "exceeds the limit of 100000000");
}

TEST(SafetensorsReaderTest, RejectsHeaderLengthBeyondTheFile) {
  ExpectCorrupt(Read(LittleEndian64(64) + "{}      "), "runs past the end of the file");
}

TEST(SafetensorsReaderTest, RejectsHugeHeaderLengthWithoutOverflow) {
  ExpectCorrupt(Read(LittleEndian64(~uint64_t{0}) + "{}"), "exceeds the limit");
}

TEST(SafetensorsReaderTest, RejectsHeaderThatIsNotUtf8) {
  ExpectCorrupt(Read(File("{\"\xff\":{}}", 0)), "not valid UTF-8");
}

TEST(SafetensorsReaderTest, RejectsOverlongUtf8) {
  // "\xc0\xaf" is an overlong '/', which strict UTF-8 forbids.
  ExpectCorrupt(Read(File("{\"\xc0\xaf\":{}}", 0)), "not valid UTF-8");
}

TEST(SafetensorsReaderTest, RejectsHeaderThatIsNotJson) {
  ExpectCorrupt(Read(File("{\"a\": ", 0)), "not valid JSON");
}

TEST(SafetensorsReaderTest, RejectsTrailingGarbageAfterJson) {
  ExpectCorrupt(Read(File("{} x", 0)), "not valid JSON");
}

TEST(SafetensorsReaderTest, RejectsHeaderThatIsNotAnObject) {
  ExpectCorrupt(Read(File("[1, 2]", 0)), "not a JSON object");
}

TEST(SafetensorsReaderTest, RejectsDuplicateTensorNames) {
  ExpectCorrupt(
      Read(File("{\"w\":" + F32Entry("[1]", "[0,4]") + ",\"w\":" + F32Entry("[1]", "[4,8]") + "}",
                8)),
      "duplicate key \"w\"");
}

TEST(SafetensorsReaderTest, RejectsDuplicateKeysInsideAnEntry) {
  ExpectCorrupt(Read(File("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[1],"
                          "\"data_offsets\":[0,4]}}",
                          4)),
                "duplicate key \"dtype\"");
}

TEST(SafetensorsReaderTest, RejectsDeeplyNestedHeader) {
  std::string deep = "{\"__metadata__\":" + std::string(200, '[') + std::string(200, ']') + "}";
  ExpectCorrupt(Read(File(deep, 0)), "nested deeper than");
}

TEST(SafetensorsReaderTest, RejectsEntryThatIsNotAnObject) {
  ExpectCorrupt(Read(File("{\"w\":[1]}", 0)), "tensor \"w\": entry is not a JSON object");
}

TEST(SafetensorsReaderTest, RejectsEntryWithoutDtype) {
  ExpectCorrupt(Read(File("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4)),
                "tensor \"w\": missing \"dtype\"");
}

TEST(SafetensorsReaderTest, RejectsEntryWithoutShape) {
  ExpectCorrupt(Read(File("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4)),
                "tensor \"w\": missing \"shape\"");
}

TEST(SafetensorsReaderTest, RejectsEntryWithoutDataOffsets) {
  ExpectCorrupt(Read(File("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4)),
                "tensor \"w\": missing \"data_offsets\"");
}

TEST(SafetensorsReaderTest, RejectsUnknownKeyInEntry) {
  ExpectCorrupt(Read(File("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
                          "\"stride\":[1]}}",
                          4)),
                "tensor \"w\": unknown key \"stride\"");
}

TEST(SafetensorsReaderTest, RejectsDtypeThatIsNotAString) {
  ExpectCorrupt(Read(File("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4)),
                "\"dtype\" is not a string");
}

TEST(SafetensorsReaderTest, RejectsUnsupportedDtypeNamingTensorAndCode) {
  // F8_E8M0 is in newer safetensors but has no torch 2.6 dtype.
  ExpectCorrupt(
      Read(File("{\"w\":{\"dtype\":\"F8_E8M0\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1)),
      "tensor \"w\": unsupported dtype \"F8_E8M0\"");
}

TEST(SafetensorsReaderTest, ReadsFloat8AndUnsignedDtypes) {
  struct Case {
    const char* code;
    DType dtype;
    size_t size;
  };
  for (const Case& c : {Case{"F8_E4M3", DType::kFloat8_e4m3fn, 1},
                        Case{"F8_E5M2", DType::kFloat8_e5m2, 1},
                        Case{"F8_E4M3FNUZ", DType::kFloat8_e4m3fnuz, 1},
                        Case{"F8_E5M2FNUZ", DType::kFloat8_e5m2fnuz, 1},
                        Case{"U16", DType::kUInt16, 2}, Case{"U32", DType::kUInt32, 4},
                        Case{"U64", DType::kUInt64, 8}}) {
    SCOPED_TRACE(c.code);
    const std::string end = std::to_string(3 * c.size);
    absl::StatusOr<Checkpoint> r = Read(File(std::string("{\"w\":{\"dtype\":\"") + c.code +
                                                 "\",\"shape\":[3],\"data_offsets\":[0," +
                                                 end + "]}}",
                                             3 * c.size));
    ASSERT_TRUE(r.ok()) << r.status();
    const TensorRecord& t = r->root->Find("w")->tensor();
    EXPECT_EQ(t.dtype, c.dtype);
    EXPECT_EQ(t.nbytes(), 3 * c.size);
  }
}

TEST(SafetensorsReaderTest, RejectsShapeThatIsNotAnArray) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("3", "[0,12]") + "}", 12)),
                "\"shape\" is not an array");
}

TEST(SafetensorsReaderTest, RejectsNegativeDimension) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[-1]", "[0,0]") + "}", 0)),
                "shape dimension -1 is not a non-negative integer");
}

TEST(SafetensorsReaderTest, RejectsFractionalDimension) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[1.5]", "[0,4]") + "}", 4)),
                "shape dimension 1.5 is not a non-negative integer");
}

TEST(SafetensorsReaderTest, RejectsDimensionBeyondInt64) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[9223372036854775808]", "[0,4]") + "}", 4)),
                "does not fit in int64");
}

TEST(SafetensorsReaderTest, RejectsShapeWhoseProductOverflows) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[4294967296,4294967296]", "[0,4]") + "}", 4)),
                "more elements than int64 can count");
}

TEST(SafetensorsReaderTest, RejectsShapeWhoseByteSizeOverflows) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[4611686018427387904]", "[0,4]") + "}", 4)),
                "more bytes than uint64 can count");
}

TEST(SafetensorsReaderTest, RejectsDataOffsetsWithOneNumber) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[1]", "[4]") + "}", 4)),
                "\"data_offsets\" [4] is not [begin, end]");
}

TEST(SafetensorsReaderTest, RejectsNegativeDataOffset) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[1]", "[-4,0]") + "}", 4)), "is not [begin, end]");
}

TEST(SafetensorsReaderTest, RejectsBeginAfterEnd) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[0]", "[8,4]") + "}", 8)),
                "data_offsets [8, 4] has begin after end");
}

TEST(SafetensorsReaderTest, RejectsSpanThatDiffersFromShapeTimesDtype) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[3]", "[0,8]") + "}", 8)),
                "span 8 bytes but shape [3] of F32 needs 12");
}

TEST(SafetensorsReaderTest, RejectsOffsetsPastTheData) {
  ExpectCorrupt(Read(File("{\"w\":" + F32Entry("[4]", "[0,16]") + "}", 8)),
                "run past the end of the 8-byte data buffer");
}

TEST(SafetensorsReaderTest, RejectsOverlappingTensors) {
  ExpectCorrupt(
      Read(File("{\"a\":" + F32Entry("[2]", "[0,8]") + ",\"b\":" + F32Entry("[2]", "[4,12]") + "}",
                12)),
      "tensor \"b\" (data_offsets [4, 12]) overlaps tensor \"a\"");
}

TEST(SafetensorsReaderTest, RejectsEmptyTensorInsideAnother) {
  ExpectCorrupt(
      Read(File("{\"a\":" + F32Entry("[2]", "[0,8]") + ",\"e\":" + F32Entry("[0]", "[4,4]") + "}",
                8)),
      "overlaps");
}

TEST(SafetensorsReaderTest, RejectsHoleBetweenTensors) {
  ExpectCorrupt(
      Read(File("{\"a\":" + F32Entry("[1]", "[0,4]") + ",\"b\":" + F32Entry("[1]", "[8,12]") + "}",
                12)),
      "no tensor covers bytes [4, 8) before tensor \"b\"");
}

TEST(SafetensorsReaderTest, RejectsHoleAtTheStart) {
  ExpectCorrupt(Read(File("{\"a\":" + F32Entry("[1]", "[4,8]") + "}", 8)),
                "no tensor covers bytes [0, 4)");
}

TEST(SafetensorsReaderTest, RejectsTrailingBytesAfterTheLastTensor) {
  ExpectCorrupt(Read(File("{\"a\":" + F32Entry("[1]", "[0,4]") + "}", 8)),
                "tensors cover 4 bytes but the file holds 8 data bytes");
}

TEST(SafetensorsReaderTest, RejectsMetadataThatIsNotAnObject) {
  ExpectCorrupt(Read(File("{\"__metadata__\":[\"a\"]}", 0)),
                "\"__metadata__\" is not a JSON object");
}

TEST(SafetensorsReaderTest, RejectsNonStringMetadataValue) {
  ExpectCorrupt(Read(File("{\"__metadata__\":{\"epoch\":3}}", 0)),
                "\"__metadata__\" value of \"epoch\" is not a string");
}

TEST(SafetensorsReaderTest, MissingFileIsNotFound) {
  absl::StatusOr<Checkpoint> c = ReadSafetensors("/nonexistent/dir/x.safetensors");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace weightd
