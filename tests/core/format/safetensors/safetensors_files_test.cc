// Files written by Python (tests/data/make_safetensors_cases.py) read by our
// reader, and files written by our writer read back by ours and by Python.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/checkpoint/buffer.h"
#include "core/checkpoint/tensor.h"
#include "core/format/safetensors/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/format/safetensors/test_util.h"

namespace weightd {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using safetensors_test::CasesDir;
using safetensors_test::CasesScript;
using safetensors_test::MakeTempDir;
using safetensors_test::Python;
using safetensors_test::ReadFileBytes;
using safetensors_test::ReadJson;
using safetensors_test::RunCommand;

class SafetensorsFilesTest : public ::testing::Test {
 protected:
  static std::string Case(const std::string& name) { return CasesDir() + "/" + name; }

  static Checkpoint ReadAllDtypes() {
    absl::StatusOr<Checkpoint> c = ReadSafetensors(Case("all_dtypes.safetensors"));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : Checkpoint{};
  }

  static StateDict ToStateDict(const Checkpoint& c) {
    StateDict out;
    for (const auto& [key, value] : c.root->entries())
      out.emplace_back(key->str(), value->tensor());
    return out;
  }
};

TEST_F(SafetensorsFilesTest, TensorsComeInHeaderOrder) {
  Checkpoint c = ReadAllDtypes();
  nlohmann::ordered_json expected = ReadJson(Case("all_dtypes.json"));
  ASSERT_EQ(c.root->entries().size(), expected["tensors"].size());
  for (size_t i = 0; i < expected["tensors"].size(); ++i) {
    EXPECT_EQ(c.root->entries()[i].first->str(), expected["tensors"][i]["name"]);
  }
}

TEST_F(SafetensorsFilesTest, EveryDtypeMatchesWhatPythonWrote) {
  Checkpoint c = ReadAllDtypes();
  nlohmann::ordered_json expected = ReadJson(Case("all_dtypes.json"));
  for (const auto& want : expected["tensors"]) {
    std::string name = want["name"];
    const Value* v = c.root->Find(name);
    ASSERT_NE(v, nullptr) << name;
    const TensorRecord& t = v->tensor();
    EXPECT_EQ(DTypeName(t.dtype), want["dtype"].get<std::string>()) << name;
    EXPECT_EQ(t.shape, want["shape"].get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(t.nbytes(), want["nbytes"].get<uint64_t>()) << name;
    EXPECT_EQ(std::to_string(t.Checksum()), want["xxh64"].get<std::string>()) << name;
  }
}

TEST_F(SafetensorsFilesTest, ReadsValuesOfFloat32Tensor) {
  Checkpoint c = ReadAllDtypes();
  const TensorRecord& t = c.root->Find("float32")->tensor();
  ASSERT_EQ(t.nbytes(), 24u);
  float values[6];
  std::memcpy(values, t.data(), 24);
  EXPECT_EQ(std::vector<float>(values, values + 6), (std::vector<float>{0, 1, 2, 3, 4, 5}));
}

TEST_F(SafetensorsFilesTest, ReadsZeroDimTensorAsScalar) {
  Checkpoint c = ReadAllDtypes();
  const TensorRecord& t = c.root->Find("scalar")->tensor();
  EXPECT_TRUE(t.shape.empty());
  EXPECT_EQ(t.numel(), 1);
  float value;
  std::memcpy(&value, t.data(), 4);
  EXPECT_EQ(value, 2.5f);
}

TEST_F(SafetensorsFilesTest, ReadsEmptyTensors) {
  Checkpoint c = ReadAllDtypes();
  EXPECT_EQ(c.root->Find("empty")->tensor().shape, (std::vector<int64_t>{0}));
  const TensorRecord& t = c.root->Find("empty_2d")->tensor();
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 0, 3}));
  EXPECT_EQ(t.dtype, DType::kInt64);
  EXPECT_EQ(t.nbytes(), 0u);
}

TEST_F(SafetensorsFilesTest, ReadsMetadataInFileOrder) {
  Checkpoint c = ReadAllDtypes();
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(c.file_metadata, (Pairs{{"format", "pt"}, {"epoch", "3"}}));
  EXPECT_EQ(c.root->Find("__metadata__"), nullptr);
}

TEST_F(SafetensorsFilesTest, TensorsPointIntoTheMappedFile) {
  Checkpoint c = ReadAllDtypes();
  const TensorRecord& t = c.root->Find("float64")->tensor();
  const Buffer& file = *t.storage->buffer;
  EXPECT_TRUE(file.is_mapped());
  EXPECT_GE(t.data(), file.data());
  EXPECT_LE(t.data() + t.nbytes(), file.data() + file.size());
  EXPECT_EQ(t.storage->nbytes, t.nbytes());
  EXPECT_EQ(t.storage->key, "float64");
  // All tensors share the one mapping.
  EXPECT_EQ(c.root->Find("int8")->tensor().storage->buffer.get(), &file);
}

TEST_F(SafetensorsFilesTest, RoundTripIsByteIdentical) {
  Checkpoint c = ReadAllDtypes();
  std::string dir = MakeTempDir("roundtrip");
  ASSERT_TRUE(WriteSafetensors(dir + "/a.safetensors", ToStateDict(c), c.file_metadata).ok());
  absl::StatusOr<Checkpoint> a = ReadSafetensors(dir + "/a.safetensors");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(WriteSafetensors(dir + "/b.safetensors", ToStateDict(*a), a->file_metadata).ok());
  EXPECT_EQ(ReadFileBytes(dir + "/a.safetensors"), ReadFileBytes(dir + "/b.safetensors"));
}

TEST_F(SafetensorsFilesTest, RoundTripKeepsNamesOrderMetadataAndBytes) {
  Checkpoint c = ReadAllDtypes();
  std::string path = MakeTempDir("roundtrip_bytes") + "/out.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, ToStateDict(c), c.file_metadata).ok());
  absl::StatusOr<Checkpoint> back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->file_metadata, c.file_metadata);
  ASSERT_EQ(back->root->entries().size(), c.root->entries().size());
  for (size_t i = 0; i < c.root->entries().size(); ++i) {
    const TensorRecord& want = c.root->entries()[i].second->tensor();
    const TensorRecord& got = back->root->entries()[i].second->tensor();
    EXPECT_EQ(back->root->entries()[i].first->str(), c.root->entries()[i].first->str());
    EXPECT_EQ(got.dtype, want.dtype);
    EXPECT_EQ(got.shape, want.shape);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data()), got.nbytes()),
              std::string(reinterpret_cast<const char*>(want.data()), want.nbytes()));
  }
}

TEST_F(SafetensorsFilesTest, PythonReaderAcceptsOurFile) {
  Checkpoint c = ReadAllDtypes();
  StateDict tensors = ToStateDict(c);
  // A transposed view of "float32" must arrive in row-major order.
  TensorRecord transposed = c.root->Find("float32")->tensor();
  transposed.shape = {3, 2};
  transposed.strides = {1, 3};
  tensors.emplace_back("float32_t", transposed);
  std::string path = MakeTempDir("python_check") + "/ours.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors, c.file_metadata).ok());
  std::string output;
  EXPECT_EQ(RunCommand(Python() + " " + CasesScript() + " check " + path, &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("OK"));
}

TEST_F(SafetensorsFilesTest, WriterPutsMetadataFirstAndPadsHeaderToEightBytes) {
  Checkpoint c = ReadAllDtypes();
  std::string path = MakeTempDir("layout") + "/out.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, ToStateDict(c), c.file_metadata).ok());
  std::string bytes = ReadFileBytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  std::string header = bytes.substr(8, n);
  EXPECT_THAT(header, StartsWith("{\"__metadata__\":{\"format\":\"pt\",\"epoch\":\"3\"},"));
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));
}

TEST_F(SafetensorsFilesTest, WriterAlignsEveryTensorToItsElementSize) {
  Checkpoint c = ReadAllDtypes();
  std::string path = MakeTempDir("align") + "/out.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, ToStateDict(c)).ok());
  absl::StatusOr<Checkpoint> back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  for (const auto& [key, value] : back->root->entries()) {
    const TensorRecord& t = value->tensor();
    // mmap is page-aligned, so the offset in the file decides alignment.
    size_t offset = t.data() - t.storage->buffer->data();
    EXPECT_EQ(offset % DTypeSize(t.dtype), 0u) << key->str();
  }
}

TEST(SafetensorsWriterTest, WritesNonContiguousTensorInRowMajorOrder) {
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  auto storage = std::make_shared<Storage>();
  storage->buffer = Buffer::Own(std::string(reinterpret_cast<const char*>(values.data()), 24));
  storage->data = storage->buffer->data();
  storage->nbytes = 24;
  TensorRecord t;
  t.shape = {3, 2};
  t.strides = {1, 3};
  t.storage = storage;
  std::string path = MakeTempDir("noncontiguous") + "/t.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"t", t}}).ok());
  absl::StatusOr<Checkpoint> back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  const TensorRecord& got = back->root->Find("t")->tensor();
  EXPECT_EQ(got.shape, (std::vector<int64_t>{3, 2}));
  float out[6];
  std::memcpy(out, got.data(), 24);
  EXPECT_EQ(std::vector<float>(out, out + 6), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(SafetensorsWriterTest, WritesEmptyStateDict) {
  std::string path = MakeTempDir("empty") + "/e.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {}).ok());
  EXPECT_EQ(ReadFileBytes(path), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
}

TEST(SafetensorsWriterTest, RejectsDuplicateNames) {
  auto storage = std::make_shared<Storage>();
  storage->buffer = Buffer::Own(std::string(4, '\0'));
  storage->data = storage->buffer->data();
  storage->nbytes = 4;
  TensorRecord t;
  t.shape = {1};
  t.strides = {1};
  t.storage = storage;
  std::string path = MakeTempDir("dup") + "/d.safetensors";
  absl::Status s = WriteSafetensors(path, {{"w", t}, {"w", t}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("duplicate tensor name \"w\""));
}

TEST(SafetensorsWriterTest, RejectsTensorNamedMetadata) {
  std::string path = MakeTempDir("reserved") + "/r.safetensors";
  absl::Status s = WriteSafetensors(path, {{"__metadata__", TensorRecord{}}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("__metadata__"));
}

}  // namespace
}  // namespace weightd
