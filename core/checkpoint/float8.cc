#include "core/checkpoint/float8.h"

#include <cmath>

namespace weightd {
namespace {

enum class Special {
  kIeee,  // e5m2: exponent all ones is inf (mantissa 0) or NaN, like float16
  kFn,    // e4m3fn: no inf; S.1111.111 is NaN
  kFnuz,  // no inf, no -0; 0x80 is the only NaN
};

struct Format {
  int exponent_bits;
  int mantissa_bits;
  int bias;
  Special special;
  uint8_t max_finite;  // largest finite magnitude code
};

Format FormatOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat8_e5m2: return {5, 2, 15, Special::kIeee, 0x7b};
    case DType::kFloat8_e4m3fnuz: return {4, 3, 8, Special::kFnuz, 0x7f};
    case DType::kFloat8_e5m2fnuz: return {5, 2, 16, Special::kFnuz, 0x7f};
    case DType::kFloat8_e4m3fn:
    default: return {4, 3, 7, Special::kFn, 0x7e};
  }
}


}  // namespace

float Float8ToFloat(uint8_t bits, DType dtype) {
  const Format f = FormatOf(dtype);
  const uint32_t sign = (bits & 0x80u) << 24;
  const uint32_t magnitude = bits & 0x7fu;
  const uint32_t mantissa = magnitude & ((1u << f.mantissa_bits) - 1);
  const uint32_t exponent = magnitude >> f.mantissa_bits;
  // c10 returns this signalling-NaN pattern for the fnuz NaN (0x80).
  if (f.special == Special::kFnuz && bits == 0x80) return FloatFromBits(0x7f800001u);
  if (f.special == Special::kFn && magnitude == 0x7f) {
    // c10 keeps the mantissa as the NaN payload's top bits.
    return FloatFromBits(sign | 0x7f800000u | 0x400000u | (mantissa << (23 - f.mantissa_bits)));
  }
  if (f.special == Special::kIeee && exponent == (1u << f.exponent_bits) - 1) {
    if (mantissa == 0) return FloatFromBits(sign | 0x7f800000u);
    return FloatFromBits(sign | 0x7f800000u | 0x400000u | (mantissa << (23 - f.mantissa_bits)));
  }
  // Every finite float8 value is exact in float32.
  double value = exponent == 0
                     ? std::ldexp(static_cast<double>(mantissa), 1 - f.bias - f.mantissa_bits)
                     : std::ldexp(static_cast<double>(mantissa | (1u << f.mantissa_bits)),
                                  static_cast<int>(exponent) - f.bias - f.mantissa_bits);
  return FloatFromBits(sign | FloatBits(static_cast<float>(value)));
}

uint8_t FloatToFloat8(float value, DType dtype) {
  const Format f = FormatOf(dtype);
  const bool negative = std::signbit(value);
  const uint8_t sign = negative ? 0x80 : 0x00;
  const uint8_t nan = f.special == Special::kFnuz ? 0x80 : static_cast<uint8_t>(sign | 0x7f);
  if (std::isnan(value)) return nan;
  const uint8_t overflow = f.special == Special::kIeee ? static_cast<uint8_t>(sign | 0x7c) : nan;
  if (std::isinf(value)) return overflow;
  const double a = std::fabs(static_cast<double>(value));
  uint32_t code = 0;
  if (a != 0) {
    int e;
    std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    const int exponent = e - 1;
    const int min_normal = 1 - f.bias;
    // Scaled so that one unit is one step of the float8 grid at this
    // magnitude; exact in double, then rounded to nearest even. A carry
    // out of the mantissa lands in the exponent field, as it should.
    if (exponent < min_normal) {
      code = static_cast<uint32_t>(
          std::nearbyint(std::ldexp(a, f.mantissa_bits - min_normal)));
    } else {
      const double steps = std::nearbyint(std::ldexp(a, f.mantissa_bits - exponent));
      const double biased = static_cast<double>(exponent + f.bias);
      const double c = std::ldexp(biased, f.mantissa_bits) + steps - std::ldexp(1.0, f.mantissa_bits);
      if (c > f.max_finite) return overflow;
      code = static_cast<uint32_t>(c);
    }
  }
  if (code > f.max_finite) return overflow;
  if (f.special == Special::kFnuz && code == 0) return 0x00;  // no -0
  return static_cast<uint8_t>(sign | code);
}

}  // namespace weightd
