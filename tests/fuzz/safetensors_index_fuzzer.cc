// libFuzzer target: arbitrary bytes as a sharded safetensors index
// (`model.safetensors.index.json`, transformers' save_pretrained layout).
// The two shards the seeds name are real files in a private directory; the
// index is rewritten there for every input, so the parser runs exactly as it
// does on a repository, including shard lookup and the weight_map <-> shard
// cross-checks. Names with '/' or ".." must be refused before any file
// outside the directory is opened.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/checkpoint/value.h"
#include "core/format/safetensors/safetensors.h"
#include "tests/fuzz/fuzz_files.h"

namespace {

std::string* index_path = nullptr;

std::string Floats(int n) {
  std::string bytes;
  for (int i = 0; i < n; ++i) {
    float f = 0.5f * i;
    bytes.append(reinterpret_cast<const char*>(&f), sizeof f);
  }
  return bytes;
}

}  // namespace

// Keep in step with make_seeds.py (index_seeds), which names these shards
// and tensors.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  using weightd::fuzz::FakeTensor;
  std::string dir = weightd::fuzz::MakeTempDir("index-fuzz");
  weightd::fuzz::WriteTempFile(
      dir + "/model-00001-of-00002.safetensors",
      weightd::fuzz::SafetensorsBytes({{"embed.weight", "F32", {4, 2}, Floats(8)},
                                       {"norm.weight", "F16", {2}, std::string(4, '\x3c')}},
                                      "{\"format\":\"pt\"}"));
  weightd::fuzz::WriteTempFile(
      dir + "/model-00002-of-00002.safetensors",
      weightd::fuzz::SafetensorsBytes(
          {{"head.weight", "F32", {2, 2}, Floats(4)}, {"head.bias", "F32", {2}, Floats(2)}},
          "{\"format\":\"pt\"}"));
  index_path = new std::string(dir + "/model.safetensors.index.json");
  weightd::fuzz::RemoveAtExit(*index_path);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  weightd::fuzz::WriteFileOrDie(*index_path,
                                std::string(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<weightd::Checkpoint> checkpoint = weightd::ReadShardedSafetensors(*index_path);
  if (!checkpoint.ok()) return 0;
  // Accepted tensors must be readable end to end (ASan checks the mapping).
  for (const auto& [key, value] : checkpoint->root->entries()) {
    if (!value->is(weightd::Value::Kind::kTensor)) __builtin_trap();
    (void)value->tensor().Checksum();
  }
  return 0;
}
