// Sharded checkpoints: an index written as transformers writes it, 2 shards.
#include <string>
#include <utility>
#include <vector>

#include "core/format/safetensors/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/format/safetensors/test_util.h"

namespace weightd {
namespace {

using ::testing::HasSubstr;
using safetensors_test::CasesDir;
using safetensors_test::MakeTempDir;
using safetensors_test::ReadFileBytes;
using safetensors_test::ReadJson;
using safetensors_test::WriteFileBytes;

constexpr char kShard1[] = "model-00001-of-00002.safetensors";
constexpr char kShard2[] = "model-00002-of-00002.safetensors";

class ShardedReaderTest : public ::testing::Test {
 protected:
  static std::string Sharded(const std::string& name) { return CasesDir() + "/sharded/" + name; }

  // A copy of the shards in a fresh directory with `index` as the index.
  static std::string WriteIndex(const std::string& test, const nlohmann::ordered_json& index) {
    std::string dir = MakeTempDir(test);
    for (const char* shard : {kShard1, kShard2}) {
      WriteFileBytes(dir + "/" + shard, ReadFileBytes(Sharded(shard)));
    }
    std::string path = dir + "/model.safetensors.index.json";
    WriteFileBytes(path, index.dump(2));
    return path;
  }

  static nlohmann::ordered_json Index() {
    return ReadJson(Sharded("model.safetensors.index.json"));
  }

  static void ExpectCorrupt(const absl::StatusOr<Checkpoint>& c, const std::string& reason) {
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << c.status();
    EXPECT_THAT(std::string(c.status().message()), HasSubstr("model.safetensors.index.json"));
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(reason));
  }
};

TEST_F(ShardedReaderTest, ReadsTensorsInWeightMapOrderAsPythonWroteThem) {
  absl::StatusOr<Checkpoint> c = ReadShardedSafetensors(Sharded("model.safetensors.index.json"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->format, kFormatSafetensorsSharded);
  nlohmann::ordered_json expected = ReadJson(Sharded("expected.json"));
  ASSERT_EQ(c->root->entries().size(), expected["tensors"].size());
  for (size_t i = 0; i < expected["tensors"].size(); ++i) {
    const auto& want = expected["tensors"][i];
    const auto& [key, value] = c->root->entries()[i];
    EXPECT_EQ(key->str(), want["name"].get<std::string>());
    EXPECT_EQ(DTypeName(value->tensor().dtype), want["dtype"].get<std::string>());
    EXPECT_EQ(std::to_string(value->tensor().Checksum()), want["xxh64"].get<std::string>());
  }
}

TEST_F(ShardedReaderTest, MetadataIsIndexMetadataThenDeduplicatedShardMetadata) {
  absl::StatusOr<Checkpoint> c = ReadShardedSafetensors(Sharded("model.safetensors.index.json"));
  ASSERT_TRUE(c.ok()) << c.status();
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  nlohmann::ordered_json expected = ReadJson(Sharded("expected.json"))["metadata"];
  Pairs want;
  for (const auto& [k, v] : expected.items()) want.emplace_back(k, v.get<std::string>());
  EXPECT_EQ(c->file_metadata, want);
}

TEST_F(ShardedReaderTest, WeightMapOrderIsKeptEvenWhenUnsorted) {
  nlohmann::ordered_json index = Index();
  nlohmann::ordered_json reversed = nlohmann::ordered_json::object();
  std::vector<std::string> names;
  for (const auto& [k, v] : index["weight_map"].items()) names.insert(names.begin(), k);
  for (const std::string& name : names) reversed[name] = index["weight_map"][name];
  index["weight_map"] = reversed;
  absl::StatusOr<Checkpoint> c = ReadShardedSafetensors(WriteIndex("reversed", index));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->root->entries().size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(c->root->entries()[i].first->str(), names[i]);
}

TEST_F(ShardedReaderTest, RejectsMissingShard) {
  nlohmann::ordered_json index = Index();
  index["weight_map"]["head.weight"] = "model-00003-of-00003.safetensors";
  ExpectCorrupt(ReadShardedSafetensors(WriteIndex("missing_shard", index)),
                "shard \"model-00003-of-00003.safetensors\" is missing");
}

TEST_F(ShardedReaderTest, RejectsNameListedInIndexButNotInShard) {
  nlohmann::ordered_json index = Index();
  index["weight_map"]["ghost.weight"] = kShard1;
  ExpectCorrupt(ReadShardedSafetensors(WriteIndex("ghost", index)),
                "tensor \"ghost.weight\" is listed in the weight_map but shard \"" +
                    std::string(kShard1) + "\" does not hold it");
}

TEST_F(ShardedReaderTest, RejectsShardTensorMissingFromIndex) {
  nlohmann::ordered_json index = Index();
  index["weight_map"].erase("layer.0.bias");
  ExpectCorrupt(ReadShardedSafetensors(WriteIndex("unlisted", index)),
                "holds tensor \"layer.0.bias\" that the weight_map does not list");
}

TEST_F(ShardedReaderTest, RejectsTensorMappedToTheWrongShard) {
  nlohmann::ordered_json index = Index();
  index["weight_map"]["layer.0.bias"] = kShard1;
  ExpectCorrupt(ReadShardedSafetensors(WriteIndex("wrong_shard", index)),
                "holds tensor \"layer.0.bias\" that the weight_map puts in");
}

TEST_F(ShardedReaderTest, RejectsShardPathEscapingTheDirectory) {
  nlohmann::ordered_json index = Index();
  index["weight_map"]["head.weight"] = "../x.safetensors";
  ExpectCorrupt(ReadShardedSafetensors(WriteIndex("escape", index)),
                "shard \"../x.safetensors\" of tensor \"head.weight\" is not a plain file name");
}

TEST_F(ShardedReaderTest, RejectsAbsoluteShardPath) {
  nlohmann::ordered_json index = Index();
  index["weight_map"]["head.weight"] = Sharded(kShard2);
  ExpectCorrupt(ReadShardedSafetensors(WriteIndex("absolute", index)), "path escape");
}

TEST_F(ShardedReaderTest, RejectsDotDotShardName) {
  nlohmann::ordered_json index = Index();
  index["weight_map"]["head.weight"] = "..";
  ExpectCorrupt(ReadShardedSafetensors(WriteIndex("dotdot", index)), "path escape");
}

TEST_F(ShardedReaderTest, RejectsIndexWithoutWeightMap) {
  ExpectCorrupt(ReadShardedSafetensors(WriteIndex("no_map", {{"metadata", {}}})),
                "no \"weight_map\" object");
}

TEST_F(ShardedReaderTest, RejectsDuplicateNamesInWeightMap) {
  std::string path = WriteIndex("dup", Index());
  WriteFileBytes(
      path, std::string("{\"weight_map\":{\"a\":\"") + kShard1 + "\",\"a\":\"" + kShard2 + "\"}}");
  ExpectCorrupt(ReadShardedSafetensors(path), "duplicate key \"a\"");
}

TEST_F(ShardedReaderTest, CorruptShardNamesIndexAndShard) {
  std::string path = WriteIndex("corrupt_shard", Index());
  std::string shard = path.substr(0, path.rfind('/') + 1) + kShard2;
  WriteFileBytes(shard, "garbage");
  ExpectCorrupt(ReadShardedSafetensors(path), "shorter than the 8-byte header length");
  EXPECT_THAT(std::string(ReadShardedSafetensors(path).status().message()), HasSubstr(kShard2));
}

}  // namespace
}  // namespace weightd
