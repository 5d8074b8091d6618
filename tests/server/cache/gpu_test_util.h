// Helpers of the GPU tier tests: snapshots of the files make_test_repository.py
// wrote with real PyTorch, and what a residency holds, read back.
#ifndef WEIGHTD_TESTS_SERVER_CACHE_GPU_TEST_UTIL_H_
#define WEIGHTD_TESTS_SERVER_CACHE_GPU_TEST_UTIL_H_

#include <xxhash.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/cache/gpu_tier.h"
#include "server/cache/snapshot.h"

namespace weightd::testing {

inline std::string RepoFile(const std::string& relative) {
  return std::string(WEIGHTD_SERVER_TEST_DATA) + "/repo/" + relative;
}

// big: 4 MiB (two float32 tensors); lenet: 10 tensors, 250 KiB; ddp: mixed
// dtypes, a non-contiguous view and a storage offset.
inline std::shared_ptr<const Snapshot> LoadSnapshot(const std::string& model) {
  const std::string path = model == "ddp" ? RepoFile("ddp.pt") : RepoFile(model + "/1/model.pt");
  absl::StatusOr<std::shared_ptr<const Snapshot>> snapshot = Snapshot::Load(model, 1, path, "");
  EXPECT_TRUE(snapshot.ok()) << snapshot.status();
  return snapshot.ok() ? *snapshot : nullptr;
}

// Row-major bytes of tensor `index` of `view` on the host.
inline std::string HostBytes(const StateDictView& view, size_t index) {
  std::vector<uint8_t> scratch;
  absl::Span<const uint8_t> bytes = view.tensors()[index].second.ContiguousBytes(&scratch);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace weightd::testing

#endif  // WEIGHTD_TESTS_SERVER_CACHE_GPU_TEST_UTIL_H_
