// The writing half of the reference implementation's unit tests
// (huggingface/safetensors, safetensors/src/tensor.rs, mod tests): the exact
// bytes its serializer produces, its writer-side refusals, its property tests
// (test_roundtrip, test_indexing) and the gpt2 layouts, one test each, named
// after the reference test.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/checkpoint/buffer.h"
#include "core/checkpoint/tensor.h"
#include "core/format/safetensors/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/format/safetensors/test_util.h"

namespace weightd {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using safetensors_test::MakeTempDir;
using safetensors_test::ReadFileBytes;

TensorRecord MakeTensor(DType dtype, std::vector<int64_t> shape, std::string bytes) {
  auto storage = std::make_shared<Storage>();
  storage->dtype = dtype;
  storage->buffer = Buffer::Own(std::move(bytes));
  storage->data = storage->buffer->data();
  storage->nbytes = storage->buffer->size();
  storage->key = "t";
  TensorRecord t;
  t.dtype = dtype;
  t.strides = ContiguousStrides(shape);
  t.shape = std::move(shape);
  t.storage = std::move(storage);
  return t;
}

std::string F32Bytes(std::vector<float> values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::vector<uint8_t> AsVector(const std::string& s) { return {s.begin(), s.end()}; }

std::string WriteAndRead(const std::string& name, const StateDict& tensors,
                         const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  const std::string path = MakeTempDir(name) + "/out.safetensors";
  absl::Status s = WriteSafetensors(path, tensors, metadata);
  EXPECT_TRUE(s.ok()) << s;
  return ReadFileBytes(path);
}

TEST(ReferenceWriterTest, test_serialization) {
  std::string out = WriteAndRead(
      "serialization", {{"attn.0", MakeTensor(DType::kFloat32, {1, 2, 3},
                                              F32Bytes({0, 1, 2, 3, 4, 5}))}});
  const uint8_t want[] = {
      64,  0,   0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110, 46,  48,  34,
      58,  123, 34,  100, 116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,  44,  34,
      115, 104, 97,  112, 101, 34,  58,  91,  49,  44,  50,  44,  51,  93,  44,  34,  100,
      97,  116, 97,  95,  111, 102, 102, 115, 101, 116, 115, 34,  58,  91,  48,  44,  50,
      52,  93,  125, 125, 0,   0,   0,   0,   0,   0,   128, 63,  0,   0,   0,   64,  0,
      0,   64,  64,  0,   0,   128, 64,  0,   0,   160, 64};
  EXPECT_THAT(AsVector(out), ElementsAreArray(want));
  EXPECT_TRUE(ReadSafetensorsBuffer(Buffer::Own(out), "x").ok());
}

TEST(ReferenceWriterTest, test_empty) {
  std::string out = WriteAndRead("empty", {});
  const uint8_t want[] = {8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32};
  EXPECT_THAT(AsVector(out), ElementsAreArray(want));
  EXPECT_TRUE(ReadSafetensorsBuffer(Buffer::Own(out), "x").ok());

  out = WriteAndRead("empty_metadata", {}, {{"framework", "pt"}});
  const uint8_t want_metadata[] = {40,  0,   0,   0,   0,   0,   0,   0,   123, 34,  95,  95,
                                   109, 101, 116, 97,  100, 97,  116, 97,  95,  95,  34,  58,
                                   123, 34,  102, 114, 97,  109, 101, 119, 111, 114, 107, 34,
                                   58,  34,  112, 116, 34,  125, 125, 32,  32,  32,  32,  32};
  EXPECT_THAT(AsVector(out), ElementsAreArray(want_metadata));
  absl::StatusOr<Checkpoint> back = ReadSafetensorsBuffer(Buffer::Own(out), "x");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->file_metadata,
            (std::vector<std::pair<std::string, std::string>>{{"framework", "pt"}}));
}

TEST(ReferenceWriterTest, test_serialization_forced_alignement) {
  std::string out = WriteAndRead(
      "forced_alignment", {{"attn0", MakeTensor(DType::kFloat32, {1, 1, 2, 3},
                                                F32Bytes({0, 1, 2, 3, 4, 5}))}});
  const uint8_t want[] = {
      72,  0,   0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110, 48,  34,  58,
      123, 34,  100, 116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,  44,  34,  115,
      104, 97,  112, 101, 34,  58,  91,  49,  44,  49,  44,  50,  44,  51,  93,  44,  34,
      100, 97,  116, 97,  95,  111, 102, 102, 115, 101, 116, 115, 34,  58,  91,  48,  44,
      50,  52,  93,  125, 125, 32,  32,  32,  32,  32,  32,  32,  0,   0,   0,   0,   0,
      0,   128, 63,  0,   0,   0,   64,  0,   0,   64,  64,  0,   0,   128, 64,  0,   0,
      160, 64};
  EXPECT_THAT(AsVector(out), ElementsAreArray(want));
}

TEST(ReferenceWriterTest, test_invalid_header_size_serialization) {
  const std::string path = MakeTempDir("header_size") + "/out.safetensors";
  absl::Status s = WriteSafetensors(
      path, {}, {{"very_large_metadata", std::string(kSafetensorsMaxHeaderBytes, 'a')}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("over the limit"));
  EXPECT_NE(::access(path.c_str(), F_OK), 0);  // nothing left behind
}

TEST(ReferenceWriterTest, test_tensorview_new_rejects_shape_overflow) {
  // usize::MAX / 2 + 1 does not fit our int64 dims; the int64 analogue.
  TensorRecord t = MakeTensor(DType::kFloat32, {std::numeric_limits<int64_t>::max() / 2 + 1, 2},
                              "");
  const std::string path = MakeTempDir("shape_overflow") + "/out.safetensors";
  absl::Status s = WriteSafetensors(path, {{"attn.0", t}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST(ReferenceWriterTest, test_serialize_to_file_same_path_with_active_mmap) {
  // Rewriting the file that the tensors being written are mapped from: our
  // writer goes through a temporary file and a rename, as the reference's.
  const std::string path = MakeTempDir("same_path") + "/w.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"w", MakeTensor(DType::kFloat32, {3},
                                                        F32Bytes({1, 2, 3}))}})
                  .ok());
  {
    absl::StatusOr<Checkpoint> mapped = ReadSafetensors(path);
    ASSERT_TRUE(mapped.ok()) << mapped.status();
    StateDict views = {{"w", mapped->root->Find("w")->tensor()}};
    ASSERT_TRUE(WriteSafetensors(path, views).ok());
  }
  absl::StatusOr<Checkpoint> back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  std::vector<uint8_t> scratch;
  absl::Span<const uint8_t> bytes = back->root->Find("w")->tensor().ContiguousBytes(&scratch);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), F32Bytes({1, 2, 3}));
}

// test_roundtrip and test_indexing (proptest, 20 cases each): random
// dtypes and shapes written, read back equal, each tensor aligned to its
// element size in the mapped file. Ours draws from every dtype both sides
// know, the float8 and unsigned ones included.
TEST(ReferenceWriterTest, test_roundtrip_and_test_indexing) {
  const DType dtypes[] = {DType::kBool,          DType::kUInt8,        DType::kInt8,
                          DType::kFloat8_e5m2,   DType::kFloat8_e4m3fn, DType::kInt16,
                          DType::kUInt16,        DType::kInt32,        DType::kUInt32,
                          DType::kInt64,         DType::kUInt64,       DType::kFloat16,
                          DType::kBFloat16,      DType::kFloat32,      DType::kFloat64,
                          DType::kComplex64,     DType::kFloat8_e4m3fnuz,
                          DType::kFloat8_e5m2fnuz};
  std::mt19937 rng(13);
  for (int round = 0; round < 20; ++round) {
    StateDict tensors;
    const int n = 1 + static_cast<int>(rng() % 7);  // 1..MAX_TENSORS-1
    for (int i = 0; i < n; ++i) {
      DType dtype = dtypes[rng() % std::size(dtypes)];
      std::vector<int64_t> shape(1 + rng() % 7);  // 1..MAX_DIMENSION-1 dims
      int64_t numel = 1;
      for (int64_t& d : shape) numel *= (d = 1 + static_cast<int64_t>(rng() % 7));
      std::string bytes(static_cast<size_t>(numel) * DTypeSize(dtype), '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      if (dtype == DType::kBool) for (char& c : bytes) c &= 1;
      tensors.push_back({absl::StrCat("t.", i), MakeTensor(dtype, shape, bytes)});
    }
    const std::string path = MakeTempDir("roundtrip") + "/r.safetensors";
    ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
    absl::StatusOr<Checkpoint> back = ReadSafetensors(path);
    ASSERT_TRUE(back.ok()) << back.status();
    ASSERT_EQ(back->root->entries().size(), tensors.size());
    for (const auto& [name, want] : tensors) {
      SCOPED_TRACE(absl::StrCat("round ", round, " ", name, " ", DTypeName(want.dtype)));
      const Value* got = back->root->Find(name);
      ASSERT_NE(got, nullptr);
      const TensorRecord& t = got->tensor();
      EXPECT_EQ(t.dtype, want.dtype);
      EXPECT_EQ(t.shape, want.shape);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.storage->data) % DTypeSize(t.dtype), 0u);
      EXPECT_EQ(std::memcmp(t.storage->data, want.storage->data, want.nbytes()), 0);
    }
  }
}

// test_gpt2 / test_gpt2_tiny: the reference serializes a gpt2-shaped dict of
// zeros and reads it back. The same header (its serializer's order: dtype,
// then name; offsets contiguous) over a sparse file of that size.
void Gpt2Like(int n_heads, const std::string& id) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> desc = {{"wte", {50257, 768}},
                                                                    {"wpe", {1024, 768}}};
  for (int i = 0; i < n_heads; ++i) {
    const std::string h = absl::StrCat("h.", i, ".");
    desc.push_back({h + "ln_1.weight", {768}});
    desc.push_back({h + "ln_1.bias", {768}});
    desc.push_back({h + "attn.bias", {1, 1, 1024, 1024}});
    desc.push_back({h + "attn.c_attn.weight", {768, 2304}});
    desc.push_back({h + "attn.c_attn.bias", {2304}});
    desc.push_back({h + "attn.c_proj.weight", {768, 768}});
    desc.push_back({h + "attn.c_proj.bias", {768}});
    desc.push_back({h + "ln_2.weight", {768}});
    desc.push_back({h + "ln_2.bias", {768}});
    desc.push_back({h + "mlp.c_fc.weight", {768, 3072}});
    desc.push_back({h + "mlp.c_fc.bias", {3072}});
    desc.push_back({h + "mlp.c_proj.weight", {3072, 768}});
    desc.push_back({h + "mlp.c_proj.bias", {768}});
  }
  desc.push_back({"ln_f.weight", {768}});
  desc.push_back({"ln_f.bias", {768}});
  std::sort(desc.begin(), desc.end());
  std::string header = "{";
  uint64_t offset = 0;
  for (const auto& [name, shape] : desc) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (header.size() > 1) header += ",";
    absl::StrAppend(&header, "\"", name, "\":{\"dtype\":\"F32\",\"shape\":[",
                    absl::StrJoin(shape, ","), "],\"data_offsets\":[", offset, ",",
                    offset + numel * 4, "]}");
    offset += numel * 4;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>(header.size() >> (8 * i));
  const std::string path = MakeTempDir(id) + "/out_" + id + ".safetensors";
  safetensors_test::WriteFileBytes(path, prefix + header);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(8 + header.size() + offset)), 0);
  absl::StatusOr<Checkpoint> back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->root->entries().size(), desc.size());
}

TEST(ReferenceWriterTest, test_gpt2) { Gpt2Like(12, "gpt2"); }
TEST(ReferenceWriterTest, test_gpt2_tiny) { Gpt2Like(6, "gpt2_tiny"); }

}  // namespace
}  // namespace weightd
