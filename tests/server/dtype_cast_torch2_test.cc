// The server's cast against torch 2.x's Tensor.to(): every case that
// tests/data/make_fp8_cast_cases.py wrote (all float8 bit patterns, float32
// edge values, every bfloat16/float16 pattern, uint16/32/64), bit for bit.
// Under a torch without these dtypes (1.13) the generator records why and the
// test skips; the torch 2.6 lane runs it. WEIGHTD_TORCH2_CAST_CASES overrides
// the directory (e.g. cases written by hand in the trixie root).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/dtype.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/cache/dtype_cast.h"
#include "core/checkpoint/float8.h"

namespace weightd {
namespace {

std::string CasesDir() {
  const char* env = std::getenv("WEIGHTD_TORCH2_CAST_CASES");
  return env != nullptr && *env != '\0' ? env : WEIGHTD_TORCH2_CAST_CASES;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(DTypeCastTorch2Test, EveryCaseMatchesTorchBitForBit) {
  const std::string dir = CasesDir();
  std::ifstream in(dir + "/cases.json");
  ASSERT_TRUE(in.good()) << "no " << dir << "/cases.json";
  nlohmann::json cases = nlohmann::json::parse(in);
  if (cases.contains("unsupported")) {
    GTEST_SKIP() << cases["unsupported"].get<std::string>()
                 << "; the torch 2.6 lane runs this test";
  }
  ASSERT_GE(cases["cases"].size(), 40u);
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    absl::StatusOr<DType> from = ParseDType(c["from"].get<std::string>());
    absl::StatusOr<DType> to = ParseDType(c["to"].get<std::string>());
    ASSERT_TRUE(from.ok() && to.ok()) << c.dump();
    const std::string input = Slurp(dir + "/" + c["input"].get<std::string>());
    const std::string expected = Slurp(dir + "/" + c["expected"].get<std::string>());
    std::vector<uint8_t> out;
    absl::Status s = CastBytes(
        {reinterpret_cast<const uint8_t*>(input.data()), input.size()}, *from, *to, &out);
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_EQ(out.size(), expected.size());
    const size_t in_size = DTypeSize(*from), out_size = DTypeSize(*to);
    int mismatches = 0;
    for (size_t i = 0; i < out.size() / out_size && mismatches < 5; ++i) {
      if (std::memcmp(out.data() + i * out_size, expected.data() + i * out_size, out_size) != 0) {
        ++mismatches;
        std::string in_hex, got_hex, want_hex;
        for (size_t b = in_size; b-- > 0;) {
          absl::StrAppend(&in_hex, absl::Hex(static_cast<uint8_t>(input[i * in_size + b]),
                                             absl::kZeroPad2));
        }
        for (size_t b = out_size; b-- > 0;) {
          absl::StrAppend(&got_hex, absl::Hex(out[i * out_size + b], absl::kZeroPad2));
          absl::StrAppend(&want_hex, absl::Hex(static_cast<uint8_t>(expected[i * out_size + b]),
                                               absl::kZeroPad2));
        }
        ADD_FAILURE() << name << " element " << i << ": input 0x" << in_hex << " gave 0x"
                      << got_hex << ", torch gives 0x" << want_hex;
      }
    }
  }
}

// Values that need no torch to check, so that a bookworm run still tests the
// conversion (the table above is the authority).
TEST(Float8Test, KnownValuesOfTheFourFormats) {
  EXPECT_EQ(Float8ToFloat(0x7e, DType::kFloat8_e4m3fn), 448.0f);
  EXPECT_TRUE(std::isnan(Float8ToFloat(0x7f, DType::kFloat8_e4m3fn)));
  EXPECT_EQ(Float8ToFloat(0x01, DType::kFloat8_e4m3fn), std::ldexp(1.0f, -9));
  EXPECT_EQ(Float8ToFloat(0x7b, DType::kFloat8_e5m2), 57344.0f);
  EXPECT_TRUE(std::isinf(Float8ToFloat(0x7c, DType::kFloat8_e5m2)));
  EXPECT_EQ(Float8ToFloat(0x7f, DType::kFloat8_e4m3fnuz), 240.0f);
  EXPECT_TRUE(std::isnan(Float8ToFloat(0x80, DType::kFloat8_e5m2fnuz)));
  EXPECT_EQ(FloatToFloat8(464.0f, DType::kFloat8_e4m3fn), 0x7e);  // tie to even
  EXPECT_EQ(FloatToFloat8(480.0f, DType::kFloat8_e4m3fn), 0x7f);  // overflow: NaN
  EXPECT_EQ(FloatToFloat8(-1e9f, DType::kFloat8_e5m2), 0xfc);     // -inf
  EXPECT_EQ(FloatToFloat8(-0.0f, DType::kFloat8_e4m3fnuz), 0x00);  // no -0
  EXPECT_EQ(FloatToFloat8(-0.0f, DType::kFloat8_e4m3fn), 0x80);
}

}  // namespace
}  // namespace weightd
