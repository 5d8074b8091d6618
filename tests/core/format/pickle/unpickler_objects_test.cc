// Whole-model pickles (PickleMode::kWholeModel, and kAuto's fallback to it):
// objects become inert records; every call other than plain instantiation
// and the recorded functools.partial is refused, naming the global.
#include <string>

#include "core/checkpoint/module_tree.h"
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
using namespace std::string_literals;  // NOLINT: literals with NUL bytes

constexpr char kWhat[] = "model.pt: archive/data.pkl";

absl::StatusOr<ValuePtr> Read(const std::string& pickle, PickleMode mode,
                              const UnpicklerLimits& limits = {}) {
  RecordingLoader loader;
  return Unpickle(Bytes(pickle), kWhat, loader.loader(), limits, nullptr, mode);
}

absl::StatusOr<ValuePtr> ReadPython(const std::string& python, PickleMode mode) {
  absl::StatusOr<std::string> bytes = PickleFromPython(python);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return bytes.status();
  return Read(*bytes, mode);
}

std::string P2(const std::string& body) { return std::string("\x80\x02", 2) + body; }

// An object of __main__.X made the way pickle makes plain objects.
constexpr char kNewX[] = "c__main__\nX\n)\x81";

void ExpectRefused(const absl::StatusOr<ValuePtr>& v, const std::string& substring) {
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition) << v.status();
  EXPECT_THAT(std::string(v.status().message()), HasSubstr(substring));
}

TEST(UnpicklerObjectsTest, ReadsAWholeModuleAsAnInertRecord) {
  absl::StatusOr<ValuePtr> v =
      ReadPython("save(torch.nn.Linear(2, 3))", PickleMode::kAuto);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE((*v)->is(Value::Kind::kObject));
  EXPECT_EQ((*v)->str(), "torch.nn.modules.linear.Linear");
  EXPECT_TRUE(IsModule(**v));
  StateDict sd;
  ASSERT_TRUE(AppendModuleStateDict(**v, "", &sd).ok());
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_EQ(sd[0].first, "weight");
  EXPECT_EQ(sd[1].first, "bias");
  EXPECT_TRUE(sd[0].second.is_parameter);
}

TEST(UnpicklerObjectsTest, AutoModeStillRefusesAPlainObjectNamingItsClass) {
  // Not a module: kAuto keeps the state-dict error.
  ExpectRefused(Read(P2(std::string(kNewX) + "}b."), PickleMode::kAuto),
                "unpickler refuses global __main__.X (not in the allowlist");
}

TEST(UnpicklerObjectsTest, AutoModeRefusesASystemCallInsideAModule) {
  ExpectRefused(ReadPython(R"PY(
import os
class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))
m = torch.nn.Linear(1, 1)
m.payload = Evil()
save(m)
)PY",
                           PickleMode::kAuto),
                "refuses global posix.system: REDUCE would call it");
}

TEST(UnpicklerObjectsTest, RefusesReduceOfAnyOtherGlobal) {
  ExpectRefused(Read(P2("cos\nsystem\n(S'echo'\ntR."), PickleMode::kWholeModel),
                "refuses global os.system: REDUCE would call it");
}

TEST(UnpicklerObjectsTest, RefusesInstAndObj) {
  ExpectRefused(Read(P2("(S'echo'\nios\nsystem\n."), PickleMode::kWholeModel),
                "refuses global os.system: INST would call it");
  ExpectRefused(Read(P2("(cos\nsystem\nS'echo'\no."), PickleMode::kWholeModel),
                "refuses global os.system: OBJ would call it");
}

TEST(UnpicklerObjectsTest, RefusesNewobjEx) {
  ExpectRefused(Read(std::string("\x80\x04\x8c\x08__main__\x8c\x01X\x93)}\x92.", 19),
                     PickleMode::kWholeModel),
                "refuses global __main__.X: NEWOBJ_EX would call it");
}

TEST(UnpicklerObjectsTest, RefusesBuildWithANonDictState) {
  ExpectRefused(Read(P2(std::string(kNewX) + "K\x01" "b."), PickleMode::kWholeModel),
                "BUILD on a __main__.X object with a int state is not supported");
  ExpectRefused(Read(P2(std::string(kNewX) + "]b."), PickleMode::kWholeModel),
                "with a list state");
}

TEST(UnpicklerObjectsTest, RefusesASecondBuild) {
  ExpectRefused(Read(P2(std::string(kNewX) + "}b}b."), PickleMode::kWholeModel),
                "BUILD twice");
}

TEST(UnpicklerObjectsTest, RefusesDictAndSlotsState) {
  // Python's BUILD takes (dict, slots); real whole-model files never have it.
  ExpectRefused(Read(P2(std::string(kNewX) + "N}X\x01\x00\x00\x00" "aK\x01s\x86" "b."s),
                     PickleMode::kWholeModel),
                "with a tuple state is not supported");
}

TEST(UnpicklerObjectsTest, RefusesSetitemsAndAppendsOnAnObject) {
  ExpectRefused(Read(P2(std::string(kNewX) + "(K\x01K\x02u."), PickleMode::kWholeModel),
                "SETITEMS on a __main__.X object is not supported");
  ExpectRefused(Read(P2(std::string(kNewX) + "K\x01K\x02s."), PickleMode::kWholeModel),
                "SETITEM on a __main__.X object");
  ExpectRefused(Read(P2(std::string(kNewX) + "(K\x01" "e."), PickleMode::kWholeModel),
                "APPENDS on a __main__.X object");
  ExpectRefused(Read(P2(std::string(kNewX) + "K\x01" "a."), PickleMode::kWholeModel),
                "APPEND on a __main__.X object");
}

TEST(UnpicklerObjectsTest, InstantiatesThroughCopyregReconstructorOnlyWithObjectBase) {
  absl::StatusOr<ValuePtr> v =
      Read(P2("ccopyreg\n_reconstructor\n(c__main__\nX\nc__builtin__\nobject\nNtR}b."),
           PickleMode::kWholeModel);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->str(), "__main__.X");
  ExpectRefused(Read(P2("ccopyreg\n_reconstructor\n(c__main__\nX\nc__builtin__\nlist\n]tR."),
                     PickleMode::kWholeModel),
                "only supported as (cls, object, None)");
}

TEST(UnpicklerObjectsTest, RecordsFunctoolsPartialWithoutCallingIt) {
  absl::StatusOr<ValuePtr> v = Read(
      P2("cfunctools\npartial\nctorch.nn\nLayerNorm\nq\x00\x85R(h\x00)}X\x03\x00\x00\x00"
         "epsG?\xb9\x99\x99\x99\x99\x99\x9asNtb."s),
      PickleMode::kWholeModel);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->str(), "functools.partial");
  EXPECT_EQ((*v)->object_args()->items()[0]->str(), "torch.nn.LayerNorm");
  ExpectRefused(Read(P2("cfunctools\npartial\nK\x01\x85R."), PickleMode::kWholeModel),
                "functools.partial of a int is not supported");
}

TEST(UnpicklerObjectsTest, RejectsAnObjectInsideItsOwnState) {
  // x.__dict__ = {'self': x}: a cycle, refused like recursive containers.
  absl::StatusOr<ValuePtr> v =
      Read(P2(std::string(kNewX) + "q\x00}X\x04\x00\x00\x00selfh\x00sb."s),
           PickleMode::kWholeModel);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("recursive structure"));
}

TEST(UnpicklerObjectsTest, BoundsTheNestingOfObjects) {
  // x.a.a.a... 30 deep.
  std::string body;
  for (int i = 0; i < 30; ++i) body += std::string(kNewX) + "}X\x01\x00\x00\x00" "a"s;
  body += "N";
  for (int i = 0; i < 30; ++i) body += "sb";
  UnpicklerLimits limits;
  limits.max_depth = 20;
  absl::StatusOr<ValuePtr> v = Read(P2(body + "."), PickleMode::kWholeModel, limits);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("nesting deeper than 20"));
  EXPECT_TRUE(Read(P2(body + "."), PickleMode::kWholeModel).ok());
}

TEST(UnpicklerObjectsTest, DataModeRefusesAWholeModule) {
  ExpectRefused(ReadPython("save(torch.nn.Linear(2, 3))", PickleMode::kData),
                "refuses global torch.nn.modules.linear.Linear");
}

}  // namespace
}  // namespace weightd
