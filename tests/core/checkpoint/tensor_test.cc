#include "core/checkpoint/tensor.h"

#include <cstring>

#include "gtest/gtest.h"

namespace weightd {
namespace {

TensorRecord FloatTensor(std::vector<float> values, std::vector<int64_t> shape,
                         std::vector<int64_t> strides, int64_t offset = 0) {
  auto storage = std::make_shared<Storage>();
  std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  storage->buffer = Buffer::Own(std::move(bytes));
  storage->data = storage->buffer->data();
  storage->nbytes = storage->buffer->size();
  storage->key = "0";
  TensorRecord t;
  t.shape = std::move(shape);
  t.strides = std::move(strides);
  t.storage_offset = offset;
  t.storage = storage;
  return t;
}

TEST(TensorTest, TransposedTensorIsCopiedInRowMajorOrder) {
  TensorRecord t = FloatTensor({1, 2, 3, 4, 5, 6}, {3, 2}, {1, 3});
  ASSERT_TRUE(ValidateTensor(t, "t").ok());
  EXPECT_FALSE(t.is_contiguous());
  std::vector<uint8_t> scratch;
  absl::Span<const uint8_t> bytes = t.ContiguousBytes(&scratch);
  ASSERT_EQ(bytes.size(), 24u);
  float out[6];
  std::memcpy(out, bytes.data(), 24);
  EXPECT_EQ(std::vector<float>(out, out + 6), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(TensorTest, ContiguousViewIsNotCopied) {
  TensorRecord t = FloatTensor({1, 2, 3, 4}, {2}, {1}, 2);
  ASSERT_TRUE(ValidateTensor(t, "t").ok());
  std::vector<uint8_t> scratch;
  absl::Span<const uint8_t> bytes = t.ContiguousBytes(&scratch);
  EXPECT_EQ(bytes.data(), t.storage->data + 8);
  EXPECT_TRUE(scratch.empty());
}

TEST(TensorTest, RejectsStorageShorterThanShape) {
  TensorRecord t = FloatTensor({1, 2, 3}, {2, 2}, {2, 1});
  absl::Status s = ValidateTensor(t, "layer.weight");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("layer.weight"), std::string::npos) << s;
  EXPECT_NE(s.message().find("needs 16"), std::string::npos) << s;
}

TEST(TensorTest, RejectsShapeWhoseProductOverflows) {
  TensorRecord t = FloatTensor({1}, {int64_t{1} << 40, int64_t{1} << 40}, {1, 1});
  absl::Status s = ValidateTensor(t, "huge");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("int64"), std::string::npos) << s;
}

TEST(TensorTest, EmptyTensorNeedsNoBytes) {
  TensorRecord t = FloatTensor({}, {0, 5}, {5, 1});
  EXPECT_TRUE(ValidateTensor(t, "empty").ok());
  EXPECT_EQ(t.nbytes(), 0u);
}

TEST(TensorTest, ChecksumIsXxh64OfRowMajorBytes) {
  TensorRecord a = FloatTensor({1, 2, 3, 4, 5, 6}, {3, 2}, {1, 3});
  TensorRecord b = FloatTensor({1, 4, 2, 5, 3, 6}, {3, 2}, {2, 1});
  EXPECT_EQ(a.Checksum(), b.Checksum());
  TensorRecord c = FloatTensor({1, 4, 2, 5, 3, 7}, {3, 2}, {2, 1});
  EXPECT_NE(a.Checksum(), c.Checksum());
}

}  // namespace
}  // namespace weightd
