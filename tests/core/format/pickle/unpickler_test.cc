// Reads pickles written by real PyTorch and Python's pickle module.
#include "core/format/pickle/unpickler.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/format/pickle/python_util.h"

namespace weightd {
namespace {

using testing_util::Bytes;
using testing_util::PickleFromPython;
using testing_util::RecordingLoader;
using ::testing::ElementsAre;

constexpr char kWhat[] = "model.pt: archive/data.pkl";

// Unpickles what `python` keeps with save()/raw().
ValuePtr Load(const std::string& python, RecordingLoader* loader) {
  absl::StatusOr<std::string> bytes = PickleFromPython(python);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return nullptr;
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(*bytes), kWhat, loader->loader());
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : nullptr;
}

std::vector<std::string> Keys(const Value& dict) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : dict.entries()) keys.push_back(k->KeyText());
  return keys;
}

TEST(UnpicklerTest, ReadsStateDictOfLinearLayer) {
  RecordingLoader loader;
  ValuePtr v = Load("torch.manual_seed(0); save(torch.nn.Linear(2, 3).state_dict())", &loader);
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->is(Value::Kind::kDict));
  // The OrderedDict's `_metadata` attribute is not an item.
  EXPECT_THAT(Keys(*v), ElementsAre("weight", "bias"));
  const TensorRecord& w = v->Find("weight")->tensor();
  EXPECT_EQ(w.dtype, DType::kFloat32);
  EXPECT_THAT(w.shape, ElementsAre(3, 2));
  EXPECT_THAT(w.strides, ElementsAre(2, 1));
  EXPECT_EQ(w.storage_offset, 0);
  EXPECT_FALSE(w.requires_grad);
  EXPECT_FALSE(w.is_parameter);
  ASSERT_NE(w.storage, nullptr);
  EXPECT_EQ(w.storage->key, "0");
}

TEST(UnpicklerTest, PassesPersistentIdsToTheLoader) {
  RecordingLoader loader;
  ValuePtr v = Load("save(torch.nn.Linear(2, 3).state_dict())", &loader);
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(loader.requests.size(), 2u);
  EXPECT_EQ(loader.requests[0].key, "0");
  EXPECT_EQ(loader.requests[0].numel, 6);
  EXPECT_EQ(loader.requests[0].location, "cpu");
  EXPECT_EQ(loader.requests[0].dtype, DType::kFloat32);
  EXPECT_EQ(loader.requests[1].key, "1");
  EXPECT_EQ(loader.requests[1].numel, 3);
}

TEST(UnpicklerTest, TakesTensorDtypeFromStorageClass) {
  RecordingLoader loader;
  ValuePtr v = Load(R"PY(
save(collections.OrderedDict([(str(d), torch.zeros(2, dtype=d)) for d in [
    torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int16,
    torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128]]))
)PY",
                    &loader);
  ASSERT_NE(v, nullptr);
  std::vector<DType> dtypes;
  for (const auto& [k, t] : v->entries()) dtypes.push_back(t->tensor().dtype);
  EXPECT_THAT(dtypes, ElementsAre(DType::kFloat16, DType::kBFloat16, DType::kFloat64,
                                  DType::kInt64, DType::kInt32, DType::kInt16, DType::kInt8,
                                  DType::kUInt8, DType::kBool, DType::kComplex64,
                                  DType::kComplex128));
}

TEST(UnpicklerTest, MarksParametersAndKeepsRequiresGrad) {
  RecordingLoader loader;
  ValuePtr v = Load(R"PY(
save({'p': torch.nn.Parameter(torch.ones(2, 3)),
      'frozen': torch.nn.Parameter(torch.ones(1), requires_grad=False),
      't': torch.ones(1)})
)PY",
                    &loader);
  ASSERT_NE(v, nullptr);
  const TensorRecord& p = v->Find("p")->tensor();
  EXPECT_TRUE(p.is_parameter);
  EXPECT_TRUE(p.requires_grad);
  EXPECT_THAT(p.shape, ElementsAre(2, 3));
  EXPECT_TRUE(v->Find("frozen")->tensor().is_parameter);
  EXPECT_FALSE(v->Find("frozen")->tensor().requires_grad);
  EXPECT_FALSE(v->Find("t")->tensor().is_parameter);
}

TEST(UnpicklerTest, ViewsOfOneStorageNameTheSameKey) {
  RecordingLoader loader;
  ValuePtr v = Load(R"PY(
t = torch.arange(10.)
save({'all': t, 'slice': t[2:5], 'transposed': t.view(2, 5).t()})
)PY",
                    &loader);
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(loader.requests.size(), 3u);
  for (const StorageRequest& r : loader.requests) {
    EXPECT_EQ(r.key, "0");
    EXPECT_EQ(r.numel, 10);
  }
  EXPECT_EQ(v->Find("slice")->tensor().storage_offset, 2);
  EXPECT_THAT(v->Find("slice")->tensor().shape, ElementsAre(3));
  EXPECT_THAT(v->Find("transposed")->tensor().strides, ElementsAre(1, 5));
}

TEST(UnpicklerTest, SharedObjectsStayShared) {
  RecordingLoader loader;
  ValuePtr v = Load("t = torch.ones(2); l = [1]; save({'a': t, 'b': t, 'l1': l, 'l2': l})",
                    &loader);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->entries()[0].second, v->entries()[1].second);
  EXPECT_EQ(v->entries()[2].second, v->entries()[3].second);
  EXPECT_EQ(loader.requests.size(), 1u);
}

// Raw protocol 2 opcodes (Python never writes memo indices out of order).
ValuePtr LoadRaw(const std::string& body, const UnpicklerLimits& limits = {}) {
  RecordingLoader loader;
  absl::StatusOr<ValuePtr> v =
      Unpickle(Bytes(std::string("\x80\x02", 2) + body), kWhat, loader.loader(), limits);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : nullptr;
}

TEST(UnpicklerTest, MemoIndicesOutOfOrderKeepTheLastPut) {
  // PUT 1 before PUT 0, then PUT 1 again: GET 1 sees the last one.
  ValuePtr v = LoadRaw(std::string("K\x07q\x01" "0K\x08q\x00" "0K\x09q\x01" "0h\x01.", 18));
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->int_value(), 9);
}

TEST(UnpicklerTest, MemoLimitCountsIndicesNotPuts) {
  UnpicklerLimits limits;
  limits.max_memo = 2;
  // Indices 1 and 0, and 1 again: two entries.
  ValuePtr v = LoadRaw(std::string("Nq\x01q\x00q\x01h\x01.", 10), limits);
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->is(Value::Kind::kNone));
}

TEST(UnpicklerTest, SmallIntsAndBoolsReadAsTheirValues) {
  // Shared leaves (0..255, True, False, None) must not leak between places.
  ValuePtr v = LoadRaw(std::string("(K\x00K\xffM\x00\x01J\xff\xff\xff\xff\x88\x89N\x88l.", 19));
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->items().size(), 8u);
  EXPECT_EQ(v->items()[0]->int_value(), 0);
  EXPECT_EQ(v->items()[1]->int_value(), 255);
  EXPECT_EQ(v->items()[2]->int_value(), 256);
  EXPECT_EQ(v->items()[3]->int_value(), -1);
  EXPECT_TRUE(v->items()[4]->is(Value::Kind::kBool) && v->items()[4]->bool_value());
  EXPECT_TRUE(v->items()[5]->is(Value::Kind::kBool) && !v->items()[5]->bool_value());
  EXPECT_TRUE(v->items()[6]->is(Value::Kind::kNone));
  EXPECT_EQ(v->items()[7], v->items()[4]);
}

TEST(UnpicklerTest, ReadsNestedPlainValuesFromTorchSave) {
  RecordingLoader loader;
  ValuePtr v = Load(R"PY(
save({'list': [1, -7, 2.5, None, True, False], 'tuple': (1, 'x'), 'set': {3},
      'frozen': frozenset([4]), 'big': 2**100, 'neg': -2**70, 'i64': -2**63,
      'bytes': b'\x00\xff', 'str': 'h\u00e9llo', 'nested': {'x': [[{}]]}, 7: 'int key'})
)PY",
                    &loader);
  ASSERT_NE(v, nullptr);
  const Value& list = *v->Find("list");
  ASSERT_EQ(list.items().size(), 6u);
  EXPECT_EQ(list.items()[0]->int_value(), 1);
  EXPECT_EQ(list.items()[1]->int_value(), -7);
  EXPECT_DOUBLE_EQ(list.items()[2]->float_value(), 2.5);
  EXPECT_TRUE(list.items()[3]->is(Value::Kind::kNone));
  EXPECT_TRUE(list.items()[4]->is(Value::Kind::kBool) && list.items()[4]->bool_value());
  EXPECT_TRUE(list.items()[5]->is(Value::Kind::kBool) && !list.items()[5]->bool_value());
  EXPECT_TRUE(v->Find("tuple")->is(Value::Kind::kTuple));
  EXPECT_EQ(v->Find("tuple")->items()[1]->str(), "x");
  ASSERT_TRUE(v->Find("set")->is(Value::Kind::kSet));
  EXPECT_EQ(v->Find("set")->items()[0]->int_value(), 3);
  ASSERT_TRUE(v->Find("frozen")->is(Value::Kind::kSet));
  ASSERT_TRUE(v->Find("big")->is(Value::Kind::kBigInt));
  EXPECT_EQ(v->Find("big")->str(), std::string(12, '\0') + "\x10");
  ASSERT_TRUE(v->Find("neg")->is(Value::Kind::kBigInt));
  EXPECT_EQ(v->Find("neg")->str(), std::string(8, '\0') + "\xc0");
  EXPECT_EQ(v->Find("i64")->int_value(), INT64_MIN);
  ASSERT_TRUE(v->Find("bytes")->is(Value::Kind::kBytes));
  EXPECT_EQ(v->Find("bytes")->str(), std::string("\x00\xff", 2));
  EXPECT_EQ(v->Find("str")->str(), "h\xc3\xa9llo");
  EXPECT_TRUE(v->Find("nested")->Find("x")->items()[0]->items()[0]->is(Value::Kind::kDict));
  EXPECT_EQ(v->entries().back().first->int_value(), 7);
}

TEST(UnpicklerTest, ReadsDevicesAndDtypes) {
  RecordingLoader loader;
  ValuePtr v = Load(
      "save({'gpu': torch.device('cuda', 1), 'cpu': torch.device('cpu'), 'dt': torch.bfloat16,"
      " 'f': torch.float})",
      &loader);
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->Find("gpu")->is(Value::Kind::kDevice));
  EXPECT_EQ(v->Find("gpu")->str(), "cuda:1");
  EXPECT_EQ(v->Find("cpu")->str(), "cpu");
  ASSERT_TRUE(v->Find("dt")->is(Value::Kind::kDType));
  EXPECT_EQ(v->Find("dt")->dtype(), DType::kBFloat16);
  EXPECT_EQ(v->Find("f")->dtype(), DType::kFloat32);
}

TEST(UnpicklerTest, ReadsTorchVersionAsItsText) {
  // Trainers save torch.__version__, a TorchVersion (str subclass, NEWOBJ).
  RecordingLoader loader;
  ValuePtr v = Load("save({'torch_version': torch.__version__, 'v': str(torch.__version__)})",
                    &loader);
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->Find("torch_version")->is(Value::Kind::kString));
  EXPECT_EQ(v->Find("torch_version")->str(), v->Find("v")->str());
  EXPECT_FALSE(v->Find("v")->str().empty());
}

TEST(UnpicklerTest, ReadsTorchSizeAsTuple) {
  RecordingLoader loader;
  ValuePtr v = Load("save({'s': torch.Size([2, 3])})", &loader);
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->Find("s")->is(Value::Kind::kTuple));
  EXPECT_EQ(v->Find("s")->items()[1]->int_value(), 3);
}

TEST(UnpicklerTest, ReadsProtocol4StateDict) {
  RecordingLoader loader;
  ValuePtr v = Load(R"PY(
buf = io.BytesIO()
torch.save(torch.nn.Linear(2, 3).state_dict(), buf, pickle_protocol=4)
z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
data = z.read([n for n in z.namelist() if n.endswith('/data.pkl')][0])
assert data[2:3] == b'\x95'  # FRAME
raw(data)
)PY",
                    &loader);
  ASSERT_NE(v, nullptr);
  EXPECT_THAT(Keys(*v), ElementsAre("weight", "bias"));
  EXPECT_THAT(v->Find("weight")->tensor().shape, ElementsAre(3, 2));
  EXPECT_EQ(loader.requests.size(), 2u);
}

TEST(UnpicklerTest, ReadsProtocol4PlainContainers) {
  RecordingLoader loader;
  ValuePtr v = Load(R"PY(
obj = collections.OrderedDict(a=1, b=[1, 2], c={1, 2}, d=frozenset([3]), e=b'x' * 300,
                              f=('t',), g=1.5, h=2**80)
data = pickle.dumps(obj, protocol=4)
import pickletools
ops = {op.name for op, _, _ in pickletools.genops(data)}
assert {'FRAME', 'MEMOIZE', 'STACK_GLOBAL', 'SHORT_BINUNICODE', 'EMPTY_SET', 'ADDITEMS',
        'FROZENSET', 'BINBYTES', 'LONG1'} <= ops, ops
raw(data)
)PY",
                    &loader);
  ASSERT_NE(v, nullptr);
  EXPECT_THAT(Keys(*v), ElementsAre("a", "b", "c", "d", "e", "f", "g", "h"));
  EXPECT_EQ(v->Find("b")->items().size(), 2u);
  EXPECT_EQ(v->Find("c")->items().size(), 2u);
  EXPECT_TRUE(v->Find("d")->is(Value::Kind::kSet));
  EXPECT_EQ(v->Find("e")->str(), std::string(300, 'x'));
  EXPECT_DOUBLE_EQ(v->Find("g")->float_value(), 1.5);
  EXPECT_TRUE(v->Find("h")->is(Value::Kind::kBigInt));
}

TEST(UnpicklerTest, ReadsProtocol2PlainContainers) {
  RecordingLoader loader;
  ValuePtr v = Load(
      "raw(pickle.dumps({'s': {1, 2}, 'b': b'ab', 'ba': bytearray(b'cd'), 'l': [[]] * 3},"
      " protocol=2))",
      &loader);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->Find("s")->items().size(), 2u);
  EXPECT_EQ(v->Find("b")->str(), "ab");
  EXPECT_EQ(v->Find("ba")->str(), "cd");
  EXPECT_EQ(v->Find("l")->items().size(), 3u);
}

TEST(UnpicklerTest, ReadsProtocol0TextOpcodes) {
  RecordingLoader loader;
  ValuePtr v = Load(
      "raw(pickle.dumps({'i': 5, 'big': 10**30, 'f': 0.25, 'l': [1, (2, None)], 'd': {}},"
      " protocol=0))",
      &loader);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->Find("i")->int_value(), 5);
  EXPECT_TRUE(v->Find("big")->is(Value::Kind::kBigInt));
  EXPECT_DOUBLE_EQ(v->Find("f")->float_value(), 0.25);
  EXPECT_EQ(v->Find("l")->items()[1]->items()[0]->int_value(), 2);
}

TEST(UnpicklerTest, ChainsLegacyPicklesWithConsumed) {
  // torch < 1.6 format: magic, protocol, sys info, the object, storage keys.
  absl::StatusOr<std::string> bytes = PickleFromPython(R"PY(
buf = io.BytesIO()
torch.save({'w': torch.ones(4)}, buf, _use_new_zipfile_serialization=False)
raw(buf.getvalue())
)PY");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  RecordingLoader loader;
  absl::Span<const uint8_t> rest = Bytes(*bytes);
  std::vector<ValuePtr> pickles;
  for (int i = 0; i < 4; ++i) {
    size_t consumed = 0;
    absl::StatusOr<ValuePtr> v = Unpickle(rest, kWhat, loader.loader(), {}, &consumed);
    ASSERT_TRUE(v.ok()) << v.status();
    pickles.push_back(*v);
    rest.remove_prefix(consumed);
  }
  EXPECT_TRUE(pickles[0]->is(Value::Kind::kBigInt) || pickles[0]->is(Value::Kind::kInt));
  EXPECT_EQ(pickles[1]->int_value(), 1001);  // legacy protocol version
  const Value* w = pickles[3]->Find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_THAT(w->tensor().shape, ElementsAre(4));
  ASSERT_EQ(loader.requests.size(), 1u);
  EXPECT_EQ(loader.requests[0].numel, 4);
}

TEST(UnpicklerTest, ResolvesLegacyViewMetadataAsOffsetIntoRootStorage) {
  RecordingLoader loader;
  ValuePtr v = Load(R"PY(
class Marker: pass
class T:
    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (Marker(), 1, (3,), (1,), False, collections.OrderedDict()))
class P(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Marker):
            return ('storage', torch.FloatStorage, '0', 'cpu', 10, ('1', 2, 4))
        return None
buf = io.BytesIO()
P(buf, protocol=2).dump({'v': T()})
raw(buf.getvalue())
)PY",
                    &loader);
  ASSERT_NE(v, nullptr);
  const TensorRecord& t = v->Find("v")->tensor();
  EXPECT_EQ(t.storage_offset, 3);  // view offset 2 + tensor offset 1
  ASSERT_EQ(loader.requests.size(), 1u);
  EXPECT_EQ(loader.requests[0].numel, 10);
}

TEST(UnpicklerTest, ReadsRebuildFromTypeForParameterSubclassPath) {
  RecordingLoader loader;
  ValuePtr v = Load(R"PY(
class T:
    def __reduce__(self):
        t = torch.ones(2)
        func, args = t.__reduce_ex__(2)
        return (torch._tensor._rebuild_from_type_v2,
                (func, torch.nn.parameter.Parameter, args, {}))
save({'x': T()})
)PY",
                    &loader);
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->Find("x")->tensor().is_parameter);
  EXPECT_THAT(v->Find("x")->tensor().shape, ElementsAre(2));
}

TEST(UnpicklerTest, ReadsBinUnicode8AndBinBytes8) {
  std::string p = "\x80\x04\x8d" + std::string("\x03\0\0\0\0\0\0\0", 8) + "abc" + "\x8e" +
                  std::string("\x02\0\0\0\0\0\0\0", 8) + "xy\x86.";
  RecordingLoader loader;
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(p), kWhat, loader.loader());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->items()[0]->str(), "abc");
  EXPECT_TRUE((*v)->items()[1]->is(Value::Kind::kBytes));
  EXPECT_EQ((*v)->items()[1]->str(), "xy");
}

TEST(UnpicklerTest, ReportsBytesConsumedUpToStop) {
  std::string p = std::string("\x80\x02K\x05.", 5) + "trailing";
  RecordingLoader loader;
  size_t consumed = 0;
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(p), kWhat, loader.loader(), {}, &consumed);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(consumed, 5u);
  EXPECT_EQ((*v)->int_value(), 5);
}

}  // namespace
}  // namespace weightd
