// Element-wise dtype conversion of tensor bytes on the server, before
// sending (FetchRequest.cast_dtype). Follows PyTorch's Tensor.to(dtype):
// float64 -> float16/bfloat16 goes through float32 as c10::Half/BFloat16 do;
// float32 -> float16/bfloat16 rounds to nearest even; NaN -> bfloat16 is
// 0x7fc0; integers wrap like static_cast; anything -> bool is `x != 0`.
// Floating -> integer truncates toward zero; a NaN or out-of-range value,
// which is undefined behaviour in PyTorch, is an error here.
// float8 types follow c10::Float8_* (core/checkpoint/float8.h): to float8 via
// float32, round to nearest even, overflow to inf or NaN, never saturating.
// uint16/32/64 behave as the other integers.
// Complex dtypes convert only to themselves. No gRPC here.
#ifndef WEIGHTD_SERVER_CACHE_DTYPE_CAST_H_
#define WEIGHTD_SERVER_CACHE_DTYPE_CAST_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/checkpoint/dtype.h"

namespace weightd {

// OK when `from` -> `to` is supported; Unimplemented otherwise.
absl::Status CheckCast(DType from, DType to);

// Converts `in` (row-major elements of `from`) into `*out` as `to`.
// InvalidArgument for a floating value that no integer of `to` holds.
absl::Status CastBytes(absl::Span<const uint8_t> in, DType from, DType to,
                       std::vector<uint8_t>* out);

uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t bits);
uint16_t FloatToBFloat16(float value);
float BFloat16ToFloat(uint16_t bits);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_CACHE_DTYPE_CAST_H_
