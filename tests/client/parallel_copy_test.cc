// ParallelCopier: every byte lands once, at every size around the split
// thresholds and part boundaries, for 1-4 threads, copy after copy.
#include "client/parallel_copy.h"

#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace weightd::client_internal {
namespace {

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(ParallelCopyTest, CopiesEveryByteAtEverySize) {
  constexpr size_t kMiB = ParallelCopier::kMinPartBytes;
  const std::vector<uint8_t> src = RandomBytes(9 * kMiB + 4097, 1);
  for (int threads : {1, 2, 3, 4}) {
    ParallelCopier copier(threads);
    for (size_t n : {size_t{0}, size_t{1}, kMiB - 1, kMiB, 2 * kMiB - 1, 2 * kMiB,
                     2 * kMiB + 1, 3 * kMiB + 4095, src.size()}) {
      // Odd offsets on both sides: parts need no alignment.
      std::vector<uint8_t> dst(n + 3, 0xEE);
      copier.Copy(dst.data() + 1, src.data() + 2, n);
      EXPECT_EQ(dst[0], 0xEE) << threads << " threads, " << n;
      EXPECT_EQ(dst[n + 1], 0xEE) << threads << " threads, " << n;
      EXPECT_TRUE(std::equal(src.begin() + 2, src.begin() + 2 + n, dst.begin() + 1))
          << threads << " threads, " << n << " bytes";
    }
  }
}

TEST(ParallelCopyTest, SplitsOnlyCopiesLargerThanAPart) {
  const std::vector<uint8_t> src = RandomBytes(4 << 20, 2);
  std::vector<uint8_t> dst(src.size());
  ParallelCopier one(1);
  one.Copy(dst.data(), src.data(), src.size());
  EXPECT_EQ(one.split_copies(), 0u);
  ParallelCopier two(2);
  two.Copy(dst.data(), src.data(), ParallelCopier::kMinPartBytes);  // one part's worth
  EXPECT_EQ(two.split_copies(), 0u);
  for (int i = 0; i < 100; ++i) two.Copy(dst.data(), src.data(), src.size());
  EXPECT_EQ(two.split_copies(), 100u);
  EXPECT_EQ(dst, src);
}

}  // namespace
}  // namespace weightd::client_internal
