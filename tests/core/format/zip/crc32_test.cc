// Crc32 (libdeflate) against the CRC-32 check value and zlib's crc32(), on
// the lengths where a folding implementation switches code paths.
#include "core/format/zip/crc32.h"

#include <zlib.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace weightd {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(Crc32Test, MatchesTheCheckValue) {
  EXPECT_EQ(Crc32(Bytes("123456789")), 0xCBF43926u);
  EXPECT_EQ(Crc32(Bytes("")), 0u);
}

TEST(Crc32Test, MatchesZlibOnEveryLengthAndSplit) {
  std::vector<uint8_t> data(1 << 20);
  std::mt19937 rng(7);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  for (size_t n : {size_t{1}, size_t{15}, size_t{16}, size_t{63}, size_t{64}, size_t{255},
                   size_t{4097}, size_t{65536 + 3}, data.size()}) {
    const uint32_t want = static_cast<uint32_t>(crc32(0L, data.data(), static_cast<uInt>(n)));
    EXPECT_EQ(Crc32(absl::MakeConstSpan(data.data(), n)), want) << n;
    // Continued over two pieces, as ZipWriter::AppendData does chunk by chunk.
    const size_t half = n / 3;
    const uint32_t first = Crc32(absl::MakeConstSpan(data.data(), half));
    EXPECT_EQ(Crc32(absl::MakeConstSpan(data.data() + half, n - half), first), want) << n;
  }
}

}  // namespace
}  // namespace weightd
