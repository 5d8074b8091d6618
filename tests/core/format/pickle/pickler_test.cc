#include "core/format/pickle/pickler.h"

#include <sys/stat.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/format/pickle/unpickler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/format/pickle/python_util.h"

namespace weightd {
namespace {

using testing_util::Bytes;
using testing_util::RecordingLoader;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

PickleTensor MakeTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                        std::vector<int64_t> strides, int64_t offset, std::string key,
                        int64_t numel, bool requires_grad = false) {
  PickleTensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.strides = std::move(strides);
  t.storage_offset = offset;
  t.storage_key = std::move(key);
  t.storage_numel = numel;
  t.requires_grad = requires_grad;
  return t;
}

std::vector<PickleTensor> Example() {
  return {MakeTensor("layer.weight", DType::kFloat32, {2, 3}, {3, 1}, 0, "0", 6),
          MakeTensor("layer.weight_t", DType::kFloat32, {3, 2}, {1, 3}, 0, "0", 6),
          MakeTensor("layer.bias", DType::kBFloat16, {3}, {1}, 1, "1", 4, true),
          MakeTensor("steps", DType::kInt64, {}, {}, 0, "2", 1)};
}

TEST(PicklerTest, RoundTripsThroughUnpickle) {
  RecordingLoader loader;
  std::string pickle = PickleStateDict(Example());
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(pickle), "test", loader.loader());
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE((*v)->is(Value::Kind::kDict));
  ASSERT_EQ((*v)->entries().size(), 4u);
  const TensorRecord& t = (*v)->Find("layer.weight_t")->tensor();
  EXPECT_THAT(t.shape, ElementsAre(3, 2));
  EXPECT_THAT(t.strides, ElementsAre(1, 3));
  const TensorRecord& bias = (*v)->Find("layer.bias")->tensor();
  EXPECT_EQ(bias.dtype, DType::kBFloat16);
  EXPECT_EQ(bias.storage_offset, 1);
  EXPECT_TRUE(bias.requires_grad);
  EXPECT_TRUE((*v)->Find("steps")->tensor().shape.empty());
  EXPECT_EQ((*v)->Find("steps")->tensor().dtype, DType::kInt64);
}

TEST(PicklerTest, MemoizesStoragesWithTheSameKey) {
  RecordingLoader loader;
  std::string pickle = PickleStateDict(Example());
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(pickle), "test", loader.loader());
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(loader.requests.size(), 3u);  // keys 0, 1, 2 once each
  EXPECT_EQ(loader.requests[0].key, "0");
  EXPECT_EQ(loader.requests[0].numel, 6);
  EXPECT_EQ(loader.requests[1].dtype, DType::kBFloat16);
  EXPECT_EQ((*v)->Find("layer.weight")->tensor().storage,
            (*v)->Find("layer.weight_t")->tensor().storage);
}

TEST(PicklerTest, WritesTorch2DtypesAsTorchDoesWithRebuildTensorV3) {
  // torch 2.6 pickles these over torch.storage.UntypedStorage (numel in
  // bytes) with the dtype object as _rebuild_tensor_v3's 7th argument.
  std::vector<PickleTensor> tensors = {
      MakeTensor("fp8", DType::kFloat8_e4m3fn, {4}, {1}, 0, "0", 4),
      MakeTensor("u32", DType::kUInt32, {2}, {1}, 1, "1", 3),
      MakeTensor("f32", DType::kFloat32, {1}, {1}, 0, "2", 1)};
  std::string pickle = PickleStateDict(tensors);
  EXPECT_THAT(pickle, HasSubstr("torch._utils\n_rebuild_tensor_v3\n"));
  EXPECT_THAT(pickle, HasSubstr("torch.storage\nUntypedStorage\n"));
  EXPECT_THAT(pickle, HasSubstr("torch\nfloat8_e4m3fn\n"));
  EXPECT_THAT(pickle, HasSubstr("torch\nFloatStorage\n"));  // float32 stays v2
  RecordingLoader loader;
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(pickle), "test", loader.loader());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->Find("fp8")->tensor().dtype, DType::kFloat8_e4m3fn);
  const TensorRecord& u32 = (*v)->Find("u32")->tensor();
  EXPECT_EQ(u32.dtype, DType::kUInt32);
  EXPECT_EQ(u32.storage_offset, 1);
  ASSERT_EQ(loader.requests.size(), 3u);
  // The loader sees the tensor's dtype and its element count, not bytes.
  EXPECT_EQ(loader.requests[1].dtype, DType::kUInt32);
  EXPECT_EQ(loader.requests[1].numel, 3);
  EXPECT_TRUE(loader.requests[1].untyped);
  EXPECT_FALSE(loader.requests[2].untyped);
}

TEST(PicklerTest, WritesEmptyStateDict) {
  RecordingLoader loader;
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(PickleStateDict({})), "test", loader.loader());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE((*v)->is(Value::Kind::kDict));
  EXPECT_TRUE((*v)->entries().empty());
}

TEST(PicklerTest, HandlesManyTensorsAndLargeNumbers) {
  // > 256 memo entries (LONG_BINPUT), > 1000 items (several SETITEMS
  // batches), and sizes beyond int32 (LONG1).
  std::vector<PickleTensor> tensors;
  for (int i = 0; i < 1100; ++i) {
    tensors.push_back(MakeTensor(absl::StrCat("t", i), DType::kFloat16, {int64_t{1} << 33},
                                 {1}, (int64_t{1} << 32) + i, absl::StrCat(i),
                                 (int64_t{1} << 34)));
  }
  tensors.push_back(MakeTensor("neg", DType::kFloat32, {70000}, {-1}, 69999, "x", 70000));
  std::vector<StorageRequest> requests;
  StorageLoader loader = [&](const StorageRequest& r) {
    requests.push_back(r);
    return absl::StatusOr<std::shared_ptr<const Storage>>(std::make_shared<Storage>());
  };
  std::string pickle = PickleStateDict(tensors);
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(pickle), "test", loader);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ((*v)->entries().size(), 1101u);
  const TensorRecord& t = (*v)->Find("t1099")->tensor();
  EXPECT_EQ(t.storage_offset, (int64_t{1} << 32) + 1099);
  EXPECT_THAT(t.shape, ElementsAre(int64_t{1} << 33));
  EXPECT_EQ(requests[1099].numel, int64_t{1} << 34);
  EXPECT_THAT((*v)->Find("neg")->tensor().strides, ElementsAre(-1));
}

// Writes the pickle and storages into a zip as torch.save would and checks
// the result with torch.load(weights_only=True).
TEST(PicklerTest, LoadsInPythonTorchWithWeightsOnly) {
  std::string dir = testing_util::TempPath("zip");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  testing_util::WriteFileOrDie(dir + "/data.pkl", PickleStateDict(Example()));
  // Storage 0: float32 0..5; 1: bfloat16 1.0 (0x3f80) x4; 2: int64 42.
  std::string s0(24, '\0');
  for (int i = 0; i < 6; ++i) {
    float f = static_cast<float>(i);
    std::memcpy(&s0[i * 4], &f, 4);
  }
  std::string s1;
  for (int i = 0; i < 4; ++i) s1 += std::string("\x80\x3f", 2);
  std::string s2(8, '\0');
  s2[0] = 42;
  testing_util::WriteFileOrDie(dir + "/0", s0);
  testing_util::WriteFileOrDie(dir + "/1", s1);
  testing_util::WriteFileOrDie(dir + "/2", s2);
  absl::StatusOr<std::string> out = testing_util::RunPython(R"PY(
import collections, sys, zipfile, torch
d = sys.argv[1]
with zipfile.ZipFile(d + '/model.pt', 'w') as z:
    z.writestr('archive/data.pkl', open(d + '/data.pkl', 'rb').read())
    for k in '012':
        z.writestr('archive/data/' + k, open(d + '/' + k, 'rb').read())
    z.writestr('archive/version', '3\n')
sd = torch.load(d + '/model.pt', weights_only=True)
assert type(sd) is collections.OrderedDict, type(sd)
assert list(sd) == ['layer.weight', 'layer.weight_t', 'layer.bias', 'steps'], list(sd)
w = sd['layer.weight']
assert w.dtype == torch.float32 and w.shape == (2, 3), w
assert torch.equal(w, torch.arange(6.).view(2, 3)), w
assert torch.equal(sd['layer.weight_t'], w.t())
assert sd['layer.weight_t'].data_ptr() == w.data_ptr()  # shared storage
b = sd['layer.bias']
assert b.dtype == torch.bfloat16 and b.storage_offset() == 1 and b.requires_grad
assert torch.equal(b, torch.ones(3, dtype=torch.bfloat16))
assert sd['steps'].dtype == torch.int64 and sd['steps'].item() == 42
print('OK')
)PY",
                                                            {dir});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "OK\n");
}

}  // namespace
}  // namespace weightd
