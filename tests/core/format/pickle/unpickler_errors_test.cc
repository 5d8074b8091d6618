// Malformed and disallowed pickles: each must fail with a specific status
// and a message naming the file, never crash.
#include <string>
#include <vector>

#include "core/format/pickle/unpickler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/format/pickle/python_util.h"

namespace weightd {
namespace {

using testing_util::Bytes;
using testing_util::PickleFromPython;
using testing_util::RecordingLoader;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kWhat[] = "bad.pt: archive/data.pkl";

absl::Status Fail(const std::string& pickle, const UnpicklerLimits& limits = {}) {
  RecordingLoader loader;
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(pickle), kWhat, loader.loader(), limits);
  EXPECT_FALSE(v.ok());
  if (v.ok()) return absl::OkStatus();
  EXPECT_THAT(std::string(v.status().message()), StartsWith(kWhat));
  return v.status();
}

absl::Status FailPython(const std::string& python) {
  absl::StatusOr<std::string> bytes = PickleFromPython(python);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return Fail(bytes.ok() ? *bytes : std::string());
}

std::string P2(const std::string& body) { return std::string("\x80\x02", 2) + body; }
// Keeps embedded NUL bytes of a literal.
template <size_t N>
std::string P2(const char (&body)[N]) {
  return P2(std::string(body, N - 1));
}

void ExpectDataLoss(const absl::Status& s, const std::string& substring) {
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(substring));
}

void ExpectRefused(const absl::Status& s, const std::string& substring) {
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(substring));
}

TEST(UnpicklerErrorsTest, RefusesOsSystemFromPythonReduce) {
  // os.system pickles as posix.system on Linux.
  ExpectRefused(FailPython(R"PY(
import os
class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))
raw(pickle.dumps({'x': Evil()}, protocol=2))
)PY"),
                "refuses global posix.system");
}

TEST(UnpicklerErrorsTest, RefusesOsSystemGlobal) {
  ExpectRefused(Fail(P2("cos\nsystem\n(S'echo'\ntR.")), "refuses global os.system");
}

TEST(UnpicklerErrorsTest, RefusesBuiltinsEvalInProtocol2) {
  ExpectRefused(FailPython(R"PY(
class Evil:
    def __reduce__(self):
        return (eval, ('1+1',))
raw(pickle.dumps(Evil(), protocol=2))
)PY"),
                "refuses global builtins.eval");
}

TEST(UnpicklerErrorsTest, RefusesBuiltinsEvalViaStackGlobal) {
  ExpectRefused(FailPython(R"PY(
class Evil:
    def __reduce__(self):
        return (eval, ('1+1',))
raw(pickle.dumps([Evil()], protocol=4))
)PY"),
                "refuses global builtins.eval");
}

TEST(UnpicklerErrorsTest, RefusesSubprocessPopen) {
  ExpectRefused(FailPython(R"PY(
import subprocess
class Evil:
    def __reduce__(self):
        return (subprocess.Popen, (['true'],))
raw(pickle.dumps(Evil(), protocol=4))
)PY"),
                "refuses global subprocess.Popen");
}

TEST(UnpicklerErrorsTest, RefusesTheStorageCallOfAPlainPickledModule) {
  // pickle.dumps (not torch.save) of a module: its storages are rebuilt by
  // calling torch.storage._load_from_bytes, which whole-model mode refuses.
  ExpectRefused(FailPython("raw(pickle.dumps(torch.nn.Linear(1, 1), protocol=2))"),
                "refuses global torch.storage._load_from_bytes");
}

TEST(UnpicklerErrorsTest, RefusesCallingParameterDirectly) {
  ExpectRefused(Fail(P2("ctorch.nn.parameter\nParameter\n)R.")),
                "may only appear inside _rebuild_from_type_v2");
}

TEST(UnpicklerErrorsTest, RefusesStorageTypeOutsidePersistentId) {
  ExpectRefused(Fail(P2("ctorch\nFloatStorage\n)R.")), "only appear inside a persistent id");
}

TEST(UnpicklerErrorsTest, RefusesAGlobalAsTheResult) {
  ExpectRefused(Fail(P2("ctorch\nFloatStorage\n.")), "result is a global torch.FloatStorage");
}

TEST(UnpicklerErrorsTest, RefusesGlobalsInsideContainers) {
  ExpectRefused(Fail(P2("]ccollections\nOrderedDict\na.")), "cannot go in a list");
}

TEST(UnpicklerErrorsTest, RejectsUnknownOpcodeNamingByteAndOffset) {
  ExpectDataLoss(Fail(P2("\xff")), "unknown pickle opcode 0xff at offset 2");
}

TEST(UnpicklerErrorsTest, RejectsProtocol5Opcodes) {
  ExpectDataLoss(Fail(P2("\x97.")), "protocol 5");
}

TEST(UnpicklerErrorsTest, RejectsTruncatedTorchPickle) {
  absl::StatusOr<std::string> bytes = PickleFromPython("save({'w': torch.ones(2)})");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  for (size_t cut : {bytes->size() - 1, bytes->size() / 2, size_t{3}}) {
    ExpectDataLoss(Fail(bytes->substr(0, cut)), "truncated");
  }
}

TEST(UnpicklerErrorsTest, RejectsTruncatedArgument) {
  ExpectDataLoss(Fail(P2("J\x01\x02")), "truncated pickle: BININT needs 4 bytes but 2 remain");
}

TEST(UnpicklerErrorsTest, RejectsEmptyInput) { ExpectDataLoss(Fail(""), "no STOP"); }

TEST(UnpicklerErrorsTest, RejectsStackUnderflow) {
  ExpectDataLoss(Fail(P2("a.")), "stack underflow at offset 2");
}

TEST(UnpicklerErrorsTest, RejectsStopOnEmptyStack) {
  ExpectDataLoss(Fail(P2(".")), "stack underflow");
}

TEST(UnpicklerErrorsTest, RejectsReachingBelowMark) {
  ExpectDataLoss(Fail(P2("](K\x01" "a.")), "stack underflow");
}

TEST(UnpicklerErrorsTest, RejectsSetItemsOnList) {
  ExpectDataLoss(Fail(P2("](K\x01K\x02u.")), "SETITEMS on a list");
}

TEST(UnpicklerErrorsTest, RejectsAppendOnDict) {
  ExpectDataLoss(Fail(P2("}K\x01" "a.")), "APPEND on a dict");
}

TEST(UnpicklerErrorsTest, RejectsAddItemsOnTuple) {
  ExpectDataLoss(Fail(P2(")(K\x01\x90.")), "ADDITEMS on a tuple");
}

TEST(UnpicklerErrorsTest, RejectsTupleWithoutMark) {
  ExpectDataLoss(Fail(P2("K\x01t.")), "MARK expected");
}

TEST(UnpicklerErrorsTest, RejectsMemoMiss) {
  ExpectDataLoss(Fail(P2("h\x05.")), "memo has no entry 5");
}

TEST(UnpicklerErrorsTest, RejectsUnhashableKey) {
  ExpectDataLoss(Fail(P2("}]K\x01s.")), "unhashable");
}

TEST(UnpicklerErrorsTest, RejectsRecursiveList) {
  ExpectDataLoss(Fail(P2("]q\x00h\x00" "a.")), "contains itself");
}

TEST(UnpicklerErrorsTest, RejectsContainerGrowingAfterBeingNested) {
  // a = []; b = [a]; a.append([]) -- how a cycle through two lists starts.
  ExpectDataLoss(Fail(P2("]q\x00]h\x00" "ah\x00" "]a.")), "modified after being nested");
}

TEST(UnpicklerErrorsTest, RejectsExponentiallySharedTree) {
  // t = (t, t) thirty times: 60 bytes that expand to 2^31 nodes.
  std::string p = P2("N");
  for (int i = 0; i < 30; ++i) p += "2\x86";
  ExpectDataLoss(Fail(p + "."), "value tree expands to more than 4194304 nodes");
}

// A memo bomb of text: one 1 MiB string referenced 1024 times is a 1 MiB
// pickle, but metadata JSON would copy it into 1 GiB.
TEST(UnpicklerErrorsTest, RejectsLongStringSharedThousandsOfTimes) {
  std::string p = P2(std::string("X\x00\x00\x10\x00", 5) + std::string(1 << 20, 'a') + "\x85");
  for (int i = 0; i < 10; ++i) p += "2\x86";
  ExpectDataLoss(Fail(p + "."), "more than 268435456 bytes of strings and key paths");
}

// d = {K: {K: {K: ...}}} with one 1 MiB key K: each level's dotted path is
// 1 MiB longer, so walking the tree with paths would allocate quadratically.
TEST(UnpicklerErrorsTest, RejectsLongKeyNestedDeeply) {
  std::string p = P2(std::string("X\x00\x00\x10\x00", 5) + std::string(1 << 20, 'k') +
                     std::string("q\x00" "0" "}q\x01" "0", 7));
  for (int i = 0; i < 100; ++i) p += std::string("}h\x00h\x01sq\x01" "0", 9);
  ExpectDataLoss(Fail(p + "h\x01."), "bytes of strings and key paths");
}

TEST(UnpicklerErrorsTest, CountsTextOncePerReferenceUpToTheLimit) {
  UnpicklerLimits limits;
  limits.max_tree_text = 1000;
  // A 100-byte string in a list n times: n * 100 bytes of text plus n
  // one-digit indexes ("0." .. "9.").
  auto list_of = [](int n) {
    std::string p = P2(std::string("X\x64\x00\x00\x00", 5) + std::string(100, 's') +
                       std::string("q\x00" "0" "](", 5));
    for (int i = 0; i < n; ++i) p += std::string("h\x00", 2);
    return p + "e.";
  };
  RecordingLoader loader;
  EXPECT_TRUE(Unpickle(Bytes(list_of(9)), kWhat, loader.loader(), limits).ok());
  ExpectDataLoss(Fail(list_of(10), limits), "more than 1000 bytes of strings and key paths");
}

TEST(UnpicklerErrorsTest, RejectsHugeTupleKeyBeforeHashing) {
  std::string p = P2("}N");
  for (int i = 0; i < 20; ++i) p += "2\x86";
  ExpectDataLoss(Fail(p + "Ns."), "dict key is too large");
}

TEST(UnpicklerErrorsTest, Rejects100kNestedListsWithoutStackOverflow) {
  std::string p = P2(std::string(100000, ']') + std::string(99999, 'a') + ".");
  ExpectDataLoss(Fail(p), "nesting deeper than 1000 levels");
}

TEST(UnpicklerErrorsTest, Rejects100kNestedTuplesWithoutStackOverflow) {
  std::string p = P2("N" + std::string(100000, '\x85') + ".");
  ExpectDataLoss(Fail(p), "nesting deeper than 1000 levels");
}

TEST(UnpicklerErrorsTest, RejectsHugeStringLengthBeyondLimit) {
  ExpectDataLoss(Fail(P2("X\xff\xff\xff\xff" "abc.")),
                 "BINUNICODE length 4294967295 exceeds the limit");
}

TEST(UnpicklerErrorsTest, RejectsStringLengthBeyondInputBeforeAllocating) {
  UnpicklerLimits limits;
  limits.max_string = size_t{1} << 40;
  ExpectDataLoss(Fail(P2("X\xff\xff\xff\xff" "abc."), limits),
                 "BINUNICODE needs 4294967295 bytes but 4 remain");
}

TEST(UnpicklerErrorsTest, RejectsHugeFrame) {
  ExpectDataLoss(Fail(std::string("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f.", 12)),
                 "FRAME needs");
}

TEST(UnpicklerErrorsTest, EnforcesStackLimit) {
  UnpicklerLimits limits;
  limits.max_stack = 10;
  ExpectDataLoss(Fail(P2(std::string(20, 'N') + "."), limits), "stack exceeds the limit of 10");
}

TEST(UnpicklerErrorsTest, EnforcesMemoLimit) {
  UnpicklerLimits limits;
  limits.max_memo = 2;
  ExpectDataLoss(Fail(P2("Nq\x00q\x01q\x02."), limits), "memo exceeds the limit of 2");
}

TEST(UnpicklerErrorsTest, RejectsMalformedPersistentId) {
  ExpectDataLoss(Fail(P2("(S'storage'\nK\x01tQ.")), "unsupported persistent id");
}

TEST(UnpicklerErrorsTest, RejectsPersistentIdWithoutStorageType) {
  ExpectDataLoss(Fail(P2("(S'storage'\nccollections\nOrderedDict\nS'0'\nS'cpu'\nK\x01tQ.")),
                 "not a storage type");
}

TEST(UnpicklerErrorsTest, RejectsViewOutsideRootStorage) {
  ExpectDataLoss(Fail(P2("(S'storage'\nctorch\nFloatStorage\nS'0'\nS'cpu'\nK\x04"
                         "(S'v'\nK\x03K\x02ttQ.")),
                 "lies outside its storage");
}

TEST(UnpicklerErrorsTest, PassesLoaderErrorsThrough) {
  std::string p = P2("(S'storage'\nctorch\nFloatStorage\nS'0'\nS'cpu'\nK\x04tQ.");
  StorageLoader loader = [](const StorageRequest& r)
      -> absl::StatusOr<std::shared_ptr<const Storage>> {
    return absl::NotFoundError("no record data/" + r.key);
  };
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(p), kWhat, loader);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("no record data/0"));
}

TEST(UnpicklerErrorsTest, RejectsRebuildTensorWithWrongArguments) {
  ExpectDataLoss(Fail(P2("ctorch._utils\n_rebuild_tensor_v2\n(K\x01tR.")),
                 "bad arguments to torch._utils._rebuild_tensor_v2");
}

// _rebuild_tensor_v3(UntypedStorage of 4 bytes, 0, (4,), (1,), False,
// OrderedDict(), DTYPE) with DTYPE spliced in.
std::string V3(const std::string& dtype,
               const std::string& storage = "torch.storage\nUntypedStorage") {
  static const char kArgs[] =
      "\nS'0'\nS'cpu'\nK\x04tQK\x00(K\x04tK\x01\x85\x89"
      "ccollections\nOrderedDict\n)R";
  return P2("ctorch._utils\n_rebuild_tensor_v3\n((S'storage'\nc" + storage +
            std::string(kArgs, sizeof(kArgs) - 1) + dtype + "tR.");
}

TEST(UnpicklerErrorsTest, ReadsRebuildTensorV3OverUntypedStorage) {
  RecordingLoader loader;
  std::string p = V3("ctorch\nfloat8_e5m2\n");
  absl::StatusOr<ValuePtr> v = Unpickle(Bytes(p), kWhat, loader.loader());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->tensor().dtype, DType::kFloat8_e5m2);
  EXPECT_EQ((*v)->tensor().shape, std::vector<int64_t>{4});
}

TEST(UnpicklerErrorsTest, RejectsRebuildTensorV3WhoseDtypeIsNotADtype) {
  ExpectDataLoss(Fail(V3("K\x07")), "dtype must be a torch dtype");
}

TEST(UnpicklerErrorsTest, RejectsUntypedStorageThatIsNoWholeNumberOfElements) {
  // The 4-byte storage as 16-byte elements.
  ExpectDataLoss(Fail(V3("ctorch\ncomplex128\n")), "no whole number of complex128");
}

TEST(UnpicklerErrorsTest, RejectsRebuildTensorV3WithWrongArity) {
  ExpectDataLoss(Fail(P2("ctorch._utils\n_rebuild_tensor_v3\n(K\x01tR.")),
                 "bad arguments to torch._utils._rebuild_tensor_v3");
}

TEST(UnpicklerErrorsTest, RejectsRebuildTensorV2OverUntypedStorage) {
  ExpectDataLoss(Fail(P2("ctorch._utils\n_rebuild_tensor_v2\n((S'storage'\nctorch.storage\n"
                         "UntypedStorage\nS'0'\nS'cpu'\nK\x04tQK\x00(K\x04tK\x01\x85\x89"
                         "ccollections\nOrderedDict\n)RtR.")),
                 "needs a typed storage");
}

TEST(UnpicklerErrorsTest, RefusesRebuildTensorV3RetypingATypedStorage) {
  ExpectRefused(Fail(V3("ctorch\nfloat8_e5m2\n", "torch\nFloatStorage")),
                "over a float32 storage is not supported");
}

TEST(UnpicklerErrorsTest, RefusesNonEmptyTensorState) {
  absl::StatusOr<std::string> tensor = PickleFromPython("save(torch.ones(2))");
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  std::string p = tensor->substr(0, tensor->size() - 1) + "}K\x01K\x02sb.";  // BUILD {1: 2}
  ExpectRefused(Fail(p), "non-empty tensor state");
}

TEST(UnpicklerErrorsTest, RejectsBuildOnList) {
  ExpectDataLoss(Fail(P2("]}b.")), "BUILD on a list");
}

TEST(UnpicklerErrorsTest, RejectsUnsupportedProtocol) {
  ExpectDataLoss(Fail("\x80\x09N."), "unsupported pickle protocol 9");
}

}  // namespace
}  // namespace weightd
