#include "core/format/torch/torch_file.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "core/checkpoint/select.h"
#include "core/format/torch/torch_file_internal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weightd {
namespace {

using ::testing::HasSubstr;

std::string Python() {
  const char* env = std::getenv("WEIGHTD_PYTHON");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/python3";
}

// Tensors of a tree by dotted path, named as make_torch_files.py names them.
void Collect(const Value& node, const std::string& path,
             std::map<std::string, const TensorRecord*>* out) {
  auto child = [&](const std::string& key) { return path.empty() ? key : path + "." + key; };
  if (node.is(Value::Kind::kTensor)) {
    (*out)[path] = &node.tensor();
  } else if (node.is(Value::Kind::kDict)) {
    for (const auto& [k, v] : node.entries()) {
      Collect(*v, child(k->is(Value::Kind::kString) ? k->str() : k->KeyText()), out);
    }
  } else if (node.is(Value::Kind::kList) || node.is(Value::Kind::kTuple)) {
    for (size_t i = 0; i < node.items().size(); ++i) {
      Collect(*node.items()[i], child(std::to_string(i)), out);
    }
  }
}

class TorchFileTest : public ::testing::Test {
 protected:
  // One Python run writes every file the tests read (importing torch is slow).
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/torch_file_test_" +
                           std::to_string(::getpid()));
    std::string command = "mkdir -p " + *dir_ + " && " + Python() + " " +
                          WEIGHTD_TORCH_SCRIPT + " " + *dir_;
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  static void TearDownTestSuite() {
    std::system(("rm -rf " + *dir_).c_str());
    delete dir_;
  }

  static std::string Path(const std::string& name) { return *dir_ + "/" + name + ".pt"; }

  static Checkpoint Read(const std::string& name) {
    absl::StatusOr<Checkpoint> checkpoint = ReadTorchFile(Path(name));
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
    return checkpoint.ok() ? *std::move(checkpoint) : Checkpoint{};
  }

  static std::map<std::string, const TensorRecord*> Tensors(const Checkpoint& checkpoint) {
    std::map<std::string, const TensorRecord*> out;
    if (checkpoint.root != nullptr) Collect(*checkpoint.root, "", &out);
    return out;
  }

  // Every tensor of `checkpoint` has the dtype, shape, strides, offset, flags
  // and bytes Python saw for it, and no tensor is extra.
  static void ExpectMatchesPython(const Checkpoint& checkpoint, const std::string& name) {
    std::ifstream in(*dir_ + "/" + name + ".json");
    nlohmann::json expected = nlohmann::json::parse(in);
    auto tensors = Tensors(checkpoint);
    EXPECT_EQ(tensors.size(), expected.size());
    for (const auto& [path, want] : expected.items()) {
      SCOPED_TRACE(name + ": " + path);
      auto it = tensors.find(path);
      ASSERT_NE(it, tensors.end());
      const TensorRecord& t = *it->second;
      EXPECT_EQ(DTypeName(t.dtype), want["dtype"].get<std::string>());
      EXPECT_EQ(t.shape, want["shape"].get<std::vector<int64_t>>());
      EXPECT_EQ(t.strides, want["stride"].get<std::vector<int64_t>>());
      EXPECT_EQ(t.storage_offset, want["storage_offset"].get<int64_t>());
      EXPECT_EQ(t.requires_grad, want["requires_grad"].get<bool>());
      EXPECT_EQ(t.is_parameter, want["is_parameter"].get<bool>());
      EXPECT_EQ(std::to_string(t.Checksum()), want["checksum"].get<std::string>());
    }
  }

  static std::string* dir_;
  friend std::string TorchFileTestDir();
};

std::string* TorchFileTest::dir_ = nullptr;

std::string TorchFileTestDir() { return *TorchFileTest::dir_; }

TEST_F(TorchFileTest, ReadsZipStateDictAsPythonSavedIt) {
  Checkpoint c = Read("sd_zip");
  EXPECT_EQ(c.format, kFormatTorchZip);
  EXPECT_EQ(c.path, Path("sd_zip"));
  ExpectMatchesPython(c, "sd_zip");
}

TEST_F(TorchFileTest, ReadsLegacyStateDictAsPythonSavedIt) {
  Checkpoint c = Read("sd_legacy");
  EXPECT_EQ(c.format, kFormatTorchLegacy);
  ExpectMatchesPython(c, "sd_legacy");
}

TEST_F(TorchFileTest, ViewsOfOneTensorShareOneStorageInZipFiles) {
  Checkpoint c = Read("views_zip");
  ExpectMatchesPython(c, "views_zip");
  auto t = Tensors(c);
  for (const char* view : {"row", "tail", "t", "flat"}) {
    EXPECT_EQ(t[view]->storage.get(), t["base"]->storage.get()) << view;
  }
  EXPECT_NE(t["other"]->storage.get(), t["base"]->storage.get());
}

TEST_F(TorchFileTest, ViewsOfOneTensorShareOneStorageInLegacyFiles) {
  Checkpoint c = Read("views_legacy");
  ExpectMatchesPython(c, "views_legacy");
  auto t = Tensors(c);
  for (const char* view : {"row", "tail", "t", "flat"}) {
    EXPECT_EQ(t[view]->storage.get(), t["base"]->storage.get()) << view;
  }
  EXPECT_NE(t["other"]->storage.get(), t["base"]->storage.get());
}

TEST_F(TorchFileTest, TransposedAndOffsetViewsKeepStridesAndOffsets) {
  Checkpoint c = Read("views_zip");
  auto t = Tensors(c);
  EXPECT_EQ(t["t"]->strides, (std::vector<int64_t>{1, 4}));
  EXPECT_FALSE(t["t"]->is_contiguous());
  EXPECT_EQ(t["flat"]->storage_offset, 5);
  float first;
  std::memcpy(&first, t["flat"]->data(), 4);
  EXPECT_EQ(first, 5.0f);
}

TEST_F(TorchFileTest, ParametersKeepRequiresGrad) {
  for (const char* name : {"params_zip", "params_legacy"}) {
    Checkpoint c = Read(name);
    ExpectMatchesPython(c, name);
    auto t = Tensors(c);
    EXPECT_TRUE(t["w"]->is_parameter) << name;
    EXPECT_TRUE(t["w"]->requires_grad) << name;
    EXPECT_FALSE(t["frozen"]->requires_grad) << name;
  }
}

TEST_F(TorchFileTest, ReadsEveryDtype) {
  for (const char* name : {"dtypes_zip", "dtypes_legacy"}) {
    Checkpoint c = Read(name);
    ExpectMatchesPython(c, name);
    int legacy_dtypes = 0;  // the dtypes torch 1.13 has, each saved once
    for (int i = 0; i < kNumDTypes; ++i) legacy_dtypes += HasLegacyStorageType(DType(i));
    EXPECT_EQ(Tensors(c).size(), static_cast<size_t>(legacy_dtypes) + 2) << name;
  }
}

// torch >= 2.1 saves float8 and uint16/32/64 with _rebuild_tensor_v3 over an
// UntypedStorage. Under torch 1.13 the script records why it cannot write
// them and these skip; the torch 2.6 lane runs them.
bool Torch2DtypesUnsupported(std::string* why) {
  std::ifstream in(TorchFileTestDir() + "/torch2_dtypes.unsupported");
  if (!in.good()) return false;
  std::getline(in, *why);
  return true;
}

TEST_F(TorchFileTest, ReadsTorch2DtypesAsPythonSavedThem) {
  std::string why;
  if (Torch2DtypesUnsupported(&why)) GTEST_SKIP() << why << "; the torch 2.6 lane runs this";
  for (const char* name : {"torch2_dtypes_zip", "torch2_dtypes_legacy"}) {
    SCOPED_TRACE(name);
    Checkpoint c = Read(name);
    ExpectMatchesPython(c, name);
    auto t = Tensors(c);
    // Views of one untyped storage share one typed Storage.
    EXPECT_EQ(t["float8_e4m3fn_t"]->storage.get(), t["float8_e4m3fn"]->storage.get());
    EXPECT_EQ(t["float8_e5m2_row"]->storage.get(), t["float8_e5m2"]->storage.get());
    EXPECT_EQ(t["float8_e5m2_row"]->storage_offset, 80);
  }
}

TEST_F(TorchFileTest, WrittenTorch2DtypesLoadInPythonWithWeightsOnly) {
  std::string why;
  if (Torch2DtypesUnsupported(&why)) GTEST_SKIP() << why << "; the torch 2.6 lane runs this";
  Checkpoint c = Read("torch2_dtypes_zip");
  auto selection = SelectStateDict(c, "");
  ASSERT_TRUE(selection.ok()) << selection.status();
  std::string ours = *dir_ + "/ours_torch2.pt";
  ASSERT_TRUE(WriteTorchZip(ours, selection->tensors).ok());
  std::string script = *dir_ + "/check_torch2.py";
  // Bits, not values: NaN != NaN, and torch.equal has no float8 kernel.
  std::ofstream(script) << R"(import sys, torch
d = sys.argv[1]
ours = torch.load(d + '/ours_torch2.pt', weights_only=True)
want = torch.load(d + '/torch2_dtypes_zip.pt', weights_only=True)
assert list(ours) == list(want), (list(ours), list(want))
bits = lambda t: t.contiguous().view(-1).view(torch.uint8)
for k, v in want.items():
    o = ours[k]
    assert o.dtype == v.dtype and o.shape == v.shape, (k, o.dtype, v.dtype)
    assert torch.equal(bits(o), bits(v)), k
    assert o.stride() == v.stride() and o.storage_offset() == v.storage_offset(), k
assert ours['float8_e4m3fn_t'].untyped_storage().data_ptr() == \
    ours['float8_e4m3fn'].untyped_storage().data_ptr()
print('OK')
)";
  EXPECT_EQ(std::system((Python() + " " + script + " " + *dir_).c_str()), 0);
}

TEST_F(TorchFileTest, ReadsPickleProtocol4) {
  ExpectMatchesPython(Read("full_proto4"), "full_proto4");
  ExpectMatchesPython(Read("full_legacy_proto4"), "full_legacy_proto4");
}

TEST_F(TorchFileTest, ReadsFullTrainingCheckpointWithOptimizerState) {
  Checkpoint c = Read("full_zip");
  ExpectMatchesPython(c, "full_zip");
  ASSERT_NE(c.root, nullptr);
  ASSERT_NE(c.root->Find("epoch"), nullptr);
  EXPECT_EQ(c.root->Find("epoch")->int_value(), 7);
  EXPECT_EQ(c.root->Find("name")->str(), "run-1");
  auto t = Tensors(c);
  EXPECT_EQ(t.count("optimizer_state_dict.state.0.exp_avg"), 1u);
  absl::StatusOr<Selection> selection = SelectStateDict(c, "");
  ASSERT_TRUE(selection.ok()) << selection.status();
  EXPECT_EQ(selection->path, "model_state_dict");
  EXPECT_EQ(selection->tensors.size(), 7u);  // Linear: 2, BatchNorm1d: 5
}

TEST_F(TorchFileTest, AcceptsAnyArchiveFolderNameAndDeflatedRecords) {
  Checkpoint c = Read("renamed_prefix");
  ExpectMatchesPython(c, "single_zip");
}

TEST_F(TorchFileTest, AcceptsLittleEndianByteOrderRecord) {
  ExpectMatchesPython(Read("little_endian"), "single_zip");
}

TEST_F(TorchFileTest, TensorsAreViewsIntoTheMappedFile) {
  auto file = Buffer::MapFile(Path("big_zip"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto c = ReadTorchBuffer(*file, "big_zip.pt");
  ASSERT_TRUE(c.ok()) << c.status();
  const TensorRecord* big = Tensors(*c)["big"];
  EXPECT_GE(big->data(), (*file)->data());
  EXPECT_LE(big->data() + big->nbytes(), (*file)->data() + (*file)->size());
}

// Reads `path` from a mapping in which every page lying wholly inside a
// storage is unreadable (PROT_NONE): touching tensor bytes would crash.
void ExpectReadingTouchesNoStoragePage(const std::string& path) {
  // A first read, from another mapping, tells where the storages lie.
  auto reference = Buffer::MapFile(path);
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto first = ReadTorchBuffer(*reference, path);
  ASSERT_TRUE(first.ok()) << first.status();
  std::map<std::string, const TensorRecord*> tensors;
  Collect(*first->root, "", &tensors);

  auto file = Buffer::MapFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  uint8_t* base = const_cast<uint8_t*>((*file)->data());
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t protected_bytes = 0;
  for (const auto& [name, t] : tensors) {
    uint64_t begin = static_cast<uint64_t>(t->storage->data - (*reference)->data());
    uint64_t end = begin + t->storage->nbytes;
    uint64_t first_page = (begin + page - 1) / page * page;
    uint64_t last_page = end / page * page;
    if (last_page > first_page) {
      ASSERT_EQ(mprotect(base + first_page, last_page - first_page, PROT_NONE), 0);
      protected_bytes += last_page - first_page;
    }
  }
  ASSERT_GT(protected_bytes, uint64_t{3} << 20);  // most of the 4 MiB tensor
  auto c = ReadTorchBuffer(*file, path);
  ASSERT_TRUE(c.ok()) << c.status();
  std::map<std::string, const TensorRecord*> read;
  Collect(*c->root, "", &read);
  EXPECT_EQ(read["big"]->numel(), 1 << 20);
}

TEST_F(TorchFileTest, ReadingAZipFileTouchesNoTensorBytes) {
  ExpectReadingTouchesNoStoragePage(Path("big_zip"));
}

TEST_F(TorchFileTest, ReadingALegacyFileTouchesNoTensorBytes) {
  ExpectReadingTouchesNoStoragePage(Path("big_legacy"));
}

TEST_F(TorchFileTest, RejectsStorageRecordShorterThanTensorNamingTensorAndFile) {
  auto c = ReadTorchFile(Path("short_record"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(c.status().message(), HasSubstr(Path("short_record")));
  EXPECT_THAT(c.status().message(), HasSubstr("\"weight\""));
  EXPECT_THAT(c.status().message(), HasSubstr("needs 64"));
}

TEST(ValidateTreeTest, NamesABadTensorByItsDottedPath) {
  // Paths are built only on failure; they must read as before: dict keys,
  // list indices, an int key in decimal, an empty key as an empty part.
  auto storage = std::make_shared<Storage>();
  storage->nbytes = 4;
  storage->key = "archive/data/0";
  TensorRecord bad;
  bad.shape = {2};
  bad.strides = {1};
  bad.storage = storage;
  TensorRecord good = bad;
  good.shape = {1};
  ValuePtr list = Value::List({Value::Tensor(good), Value::Tensor(bad)});
  ValuePtr inner = Value::Dict();
  ASSERT_TRUE(inner->SetItem(Value::Int(7), list).ok());
  ValuePtr empty_key = Value::Dict();
  ASSERT_TRUE(empty_key->SetItem(Value::String(""), inner).ok());
  ValuePtr root = Value::Dict();
  ASSERT_TRUE(root->SetItem(Value::String("ok"), Value::Tensor(good)).ok());
  ASSERT_TRUE(root->SetItem(Value::String("a"), empty_key).ok());
  absl::Status s = torch_internal::ValidateTree(*root, "f.pt", {});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("f.pt: tensor \"a..7.1\": storage \"archive/data/0\""));

  absl::Status at_root = torch_internal::ValidateTree(*Value::Tensor(bad), "f.pt", {});
  EXPECT_THAT(at_root.message(), HasSubstr("tensor \"<root>\""));
}

TEST_F(TorchFileTest, RejectsMissingStorageRecord) {
  auto c = ReadTorchFile(Path("missing_record"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(c.status().message(), HasSubstr("single_zip/data/0"));
  EXPECT_THAT(c.status().message(), HasSubstr("missing"));
}

TEST_F(TorchFileTest, RejectsBigEndianFiles) {
  auto c = ReadTorchFile(Path("big_endian"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(c.status().message(), HasSubstr("big-endian"));
}

TEST_F(TorchFileTest, RefusesOsSystemGlobalNamingIt) {
  auto c = ReadTorchFile(Path("os_system"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(c.status().message(), HasSubstr("os.system"));
  EXPECT_THAT(c.status().message(), HasSubstr(Path("os_system")));
}

TEST_F(TorchFileTest, RefusesCodeSavedByTorchSaveInBothFormats) {
  // Python pickles os.system as posix.system.
  for (const char* name : {"evil_zip", "evil_legacy"}) {
    auto c = ReadTorchFile(Path(name));
    EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << name;
    EXPECT_THAT(c.status().message(), HasSubstr("posix.system")) << name;
  }
}

TEST_F(TorchFileTest, RejectsAncientTarFormatAsUnsupported) {
  auto c = ReadTorchFile(Path("ancient_tar"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(c.status().message(), HasSubstr("tar"));
}

TEST_F(TorchFileTest, RejectsPlainPickleWithoutMagicNumber) {
  auto c = ReadTorchFile(Path("plain_pickle"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(c.status().message(), HasSubstr("magic number"));
}

TEST_F(TorchFileTest, RejectsTruncatedLegacyFile) {
  std::ifstream in(Path("sd_legacy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.resize(bytes.size() - 7);
  auto c = ReadTorchBuffer(Buffer::Own(bytes), "cut.pt");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(c.status().message(), HasSubstr("cut.pt"));
  EXPECT_THAT(c.status().message(), HasSubstr("truncated"));
}

TEST_F(TorchFileTest, RejectsEmptyFile) {
  auto c = ReadTorchBuffer(Buffer::Own(std::string()), "empty.pt");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(c.status().message(), HasSubstr("empty.pt"));
}

TEST_F(TorchFileTest, WrittenFileLoadsInPythonWithEqualTensorsAndViews) {
  // Views, a transposed tensor and every dtype, read from Python's files,
  // written by us, loaded by torch.load(weights_only=True), compared there.
  StateDict tensors;
  for (const char* name : {"views_zip", "dtypes_zip"}) {
    Checkpoint c = Read(name);
    auto selection = SelectStateDict(c, "");
    ASSERT_TRUE(selection.ok()) << selection.status();
    for (auto& entry : selection->tensors) tensors.push_back(entry);
  }
  std::string ours = *dir_ + "/ours.pt";
  ASSERT_TRUE(WriteTorchZip(ours, tensors).ok());
  std::string script = *dir_ + "/check.py";
  std::ofstream(script) << R"(import sys, torch
d = sys.argv[1]
ours = torch.load(d + '/ours.pt', weights_only=True)
want = {**torch.load(d + '/views_zip.pt'), **torch.load(d + '/dtypes_zip.pt')}
assert list(ours) == list(want), (list(ours), list(want))
for k, v in want.items():
    o = ours[k]
    assert o.dtype == v.dtype and torch.equal(o, v), k
    assert o.stride() == v.stride() and o.storage_offset() == v.storage_offset(), k
base = ours['base'].storage().data_ptr()
for k in ('row', 'tail', 't', 'flat'):
    assert ours[k].storage().data_ptr() == base, k
assert ours['other'].storage().data_ptr() != base
)";
  EXPECT_EQ(std::system((Python() + " " + script + " " + *dir_).c_str()), 0);
}

TEST_F(TorchFileTest, WrittenFileReadsBackWithSharedStorage) {
  Checkpoint c = Read("views_zip");
  auto selection = SelectStateDict(c, "");
  ASSERT_TRUE(selection.ok()) << selection.status();
  std::string ours = *dir_ + "/ours_again.pt";
  ASSERT_TRUE(WriteTorchZip(ours, selection->tensors).ok());
  Checkpoint back = Read("ours_again");
  EXPECT_EQ(back.format, kFormatTorchZip);
  ExpectMatchesPython(back, "views_zip");
  auto t = Tensors(back);
  EXPECT_EQ(t["t"]->storage.get(), t["base"]->storage.get());
}

}  // namespace
}  // namespace weightd
