// The reference implementation's own unit tests (huggingface/safetensors,
// safetensors/src/tensor.rs, mod tests) as test vectors: each row is one
// test_* function, with its bytes and its verdict. Where we refuse what the
// reference accepts, the row says so and why (README, "safetensors notes").
#include <cctype>
#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/buffer.h"
#include "core/checkpoint/tensor.h"
#include "core/format/safetensors/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weightd {
namespace {

using ::testing::HasSubstr;

// A byte string literal with its embedded NULs.
template <size_t N>
std::string Bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

std::string LittleEndian64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out;
}

enum class Verdict { kAccept, kRefuse };

struct Vector {
  const char* reference_test;  // the test_* function in tensor.rs
  std::string bytes;
  Verdict reference;  // what the reference does
  Verdict ours;       // what we do; differs only for a documented reason
  const char* reason;  // for a refusal: part of our message
};

void PrintTo(const Vector& v, std::ostream* os) { *os << v.reference_test; }

// serde_json's serializer for test_json_attack: ten tensors all claiming
// bytes [0, 16), unpadded, then 16 data bytes.
std::string JsonAttack() {
  std::string header = "{";
  for (int i = 0; i < 10; ++i) {
    if (i > 0) header += ",";
    absl::StrAppend(&header, "\"weight_", i,
                    "\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}");
  }
  header += "}";
  return LittleEndian64(header.size()) + header + std::string(16, '\0');
}

const char kI32Header[] = "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

std::vector<Vector> Vectors() {
  const std::string i32 = Bytes("<\0\0\0\0\0\0\0") + kI32Header;
  return {
      {"test_deserialization", i32 + std::string(16, '\0'), Verdict::kAccept, Verdict::kAccept,
       ""},
      {"test_lifetimes", i32 + std::string(16, '\0'), Verdict::kAccept, Verdict::kAccept, ""},
      {"test_empty_shapes_allowed",
       Bytes("8\0\0\0\0\0\0\0{\"test\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}"
             "\0\0\0\0"),
       Verdict::kAccept, Verdict::kAccept, ""},
      {"test_zero_sized_tensor",
       Bytes("<\0\0\0\0\0\0\0{\"test\":{\"dtype\":\"I32\",\"shape\":[2,0],\"data_offsets\":[0, "
             "0]}}"),
       Verdict::kAccept, Verdict::kAccept, ""},
      {"test_whitespace_padded_header", Bytes("\x06\0\0\0\0\0\0\0{}\x0D\x20\x09\x0A"),
       Verdict::kAccept, Verdict::kAccept, ""},
      {"test_whitespace_leading_padded_header", Bytes("\x06\0\0\0\0\0\0\0\x09\x0A{}\x0D\x20"),
       Verdict::kAccept, Verdict::kAccept, ""},
      {"test_invalid_info",
       Bytes("<\0\0\0\0\0\0\0{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0, "
             "4]}}"),
       Verdict::kRefuse, Verdict::kRefuse, "needs 16"},
      {"test_validation_overflow (shape)",
       Bytes("O\0\0\0\0\0\0\0{\"test\":{\"dtype\":\"I32\",\"shape\":[2,18446744073709551614],"
             "\"data_offsets\":[0,16]}}") +
           std::string(16, '\0'),
       Verdict::kRefuse, Verdict::kRefuse, "does not fit in int64"},
      {"test_validation_overflow (bytes)",
       Bytes("N\0\0\0\0\0\0\0{\"test\":{\"dtype\":\"I32\",\"shape\":[2,9223372036854775807],"
             "\"data_offsets\":[0,16]}}") +
           std::string(16, '\0'),
       Verdict::kRefuse, Verdict::kRefuse, "more elements than int64 can count"},
      {"test_json_attack", JsonAttack(), Verdict::kRefuse, Verdict::kRefuse, "overlaps"},
      {"test_metadata_incomplete_buffer (extra)",
       i32 + std::string(16, '\0') + "extra_bogus_data_for_polyglot_file", Verdict::kRefuse,
       Verdict::kRefuse, "hole in the data buffer"},
      {"test_metadata_incomplete_buffer (missing)", i32 + std::string(14, '\0'),
       Verdict::kRefuse, Verdict::kRefuse, "run past the end"},
      {"test_header_too_large", Bytes("<\0\0\0\0\xff\xff\xff") + kI32Header + std::string(16, '\0'),
       Verdict::kRefuse, Verdict::kRefuse, "exceeds the limit"},
      {"test_header_too_small", "", Verdict::kRefuse, Verdict::kRefuse,
       "shorter than the 8-byte header length"},
      {"test_invalid_header_length", Bytes("<\0\0\0\0\0\0\0"), Verdict::kRefuse,
       Verdict::kRefuse, "runs past the end of the file"},
      {"test_invalid_header_non_utf8", Bytes("\x01\0\0\0\0\0\0\0\xff"), Verdict::kRefuse,
       Verdict::kRefuse, "not valid UTF-8"},
      {"test_invalid_header_not_json", Bytes("\x01\0\0\0\0\0\0\0{"), Verdict::kRefuse,
       Verdict::kRefuse, "not valid JSON"},
      // The expected output of test_serialization_fp4. Deliberate: F4 (and
      // F6_*, F8_E8M0) have no dtype in torch 2.6, which is what we serve to.
      {"test_serialization_fp4",
       Bytes("@\0\0\0\0\0\0\0{\"attn.0\":{\"dtype\":\"F4\",\"shape\":[1,2],\"data_offsets\":[0,1]}}"
             "    \0"),
       Verdict::kAccept, Verdict::kRefuse, "unsupported dtype \"F4\""},
  };
}

class ReferenceVectorTest : public ::testing::TestWithParam<Vector> {};

TEST_P(ReferenceVectorTest, GivesTheReferenceVerdict) {
  const Vector& v = GetParam();
  absl::StatusOr<Checkpoint> r = ReadSafetensorsBuffer(Buffer::Own(v.bytes), "ref.safetensors");
  if (v.ours == Verdict::kAccept) {
    EXPECT_TRUE(r.ok()) << r.status();
  } else {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(v.reason));
  }
}

INSTANTIATE_TEST_SUITE_P(TensorRs, ReferenceVectorTest, ::testing::ValuesIn(Vectors()),
                         [](const ::testing::TestParamInfo<Vector>& info) {
                           std::string name;
                           for (char c : std::string(info.param.reference_test)) {
                             if (std::isalnum(static_cast<unsigned char>(c))) name += c;
                             else if (c == '_' || c == ' ') name += '_';
                           }
                           return name;
                         });

TEST(ReferenceVectorsTest, OnlyTheFp4RowDepartsFromTheReference) {
  for (const Vector& v : Vectors()) {
    if (v.reference != v.ours) {
      EXPECT_EQ(std::string(v.reference_test), "test_serialization_fp4");
    }
  }
}

// The accepted vectors read as the reference reads them.
TEST(ReferenceVectorsTest, DeserializationGivesTheTensor) {
  absl::StatusOr<Checkpoint> r = ReadSafetensorsBuffer(
      Buffer::Own(Bytes("<\0\0\0\0\0\0\0") + kI32Header + std::string(16, '\0')), "t");
  ASSERT_TRUE(r.ok()) << r.status();
  const TensorRecord& t = r->root->Find("test")->tensor();
  EXPECT_EQ(t.dtype, DType::kInt32);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(t.nbytes(), 16u);
}

TEST(ReferenceVectorsTest, EmptyShapeIsAScalarAndZeroSizedTensorHasNoBytes) {
  absl::StatusOr<Checkpoint> scalar = ReadSafetensorsBuffer(
      Buffer::Own(Bytes("8\0\0\0\0\0\0\0{\"test\":{\"dtype\":\"I32\",\"shape\":[],"
                        "\"data_offsets\":[0,4]}}\0\0\0\0")),
      "t");
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_TRUE(scalar->root->Find("test")->tensor().shape.empty());
  absl::StatusOr<Checkpoint> empty = ReadSafetensorsBuffer(
      Buffer::Own(Bytes("<\0\0\0\0\0\0\0{\"test\":{\"dtype\":\"I32\",\"shape\":[2,0],"
                        "\"data_offsets\":[0, 0]}}")),
      "t");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->root->Find("test")->tensor().nbytes(), 0u);
}

}  // namespace
}  // namespace weightd
