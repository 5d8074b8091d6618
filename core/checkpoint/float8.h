// The four float8 formats torch (>= 2.1/2.2) defines, element by element.
// Conversions are as torch's Tensor.to() does them on the CPU (c10/util/
// Float8_*.h), checked bit for bit against torch 2.6 over every float8 bit
// pattern and every bfloat16/float16 one (tests/data/make_fp8_cast_cases.py):
//   - from float32: round to nearest, ties to even, subnormals included;
//   - overflow: float8_e5m2 gives +-inf; the others, having no inf, give
//     NaN (e4m3fn: 0x7f / 0xff by sign; fnuz: 0x80). Nothing saturates;
//   - NaN in: NaN out (sign kept where the format has signed NaNs);
//   - fnuz formats have no -0: -0.0 and negative underflow give 0x00.
// Pure functions: no gRPC, no LibTorch.
#ifndef WEIGHTD_CORE_CHECKPOINT_FLOAT8_H_
#define WEIGHTD_CORE_CHECKPOINT_FLOAT8_H_

#include <cstdint>
#include <cstring>

#include "core/checkpoint/dtype.h"

namespace weightd {

// A float32's bits and back (the memcpy every compiler turns into a move).
inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float FloatFromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// `dtype` must satisfy IsFloat8.
float Float8ToFloat(uint8_t bits, DType dtype);
uint8_t FloatToFloat8(float value, DType dtype);

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_FLOAT8_H_
