#include "server/cache/dtype_cast.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/float8.h"

namespace weightd {
namespace {


template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void Store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

// One element, decoded: floating sources as double (exact for every
// floating dtype), integral ones as int64 (uint64 as its bits, with
// `is_uint64` so that conversions to floating see the unsigned value).
struct Element {
  bool is_float;
  double d;
  int64_t n;
  bool is_uint64 = false;
  // float8 sources: their float32 value, bits kept (torch's fnuz NaN is the
  // signalling 0x7f800001, which a trip through double would quiet).
  bool has_f = false;
  float f = 0;
};

Element FromFloat8(uint8_t bits, DType from) {
  Element e{true, 0, 0};
  e.f = Float8ToFloat(bits, from);
  e.d = e.f;
  e.has_f = true;
  return e;
}

Element Decode(const uint8_t* p, DType from) {
  switch (from) {
    case DType::kBool: return {false, 0, Load<uint8_t>(p) != 0};
    case DType::kUInt8: return {false, 0, Load<uint8_t>(p)};
    case DType::kInt8: return {false, 0, Load<int8_t>(p)};
    case DType::kInt16: return {false, 0, Load<int16_t>(p)};
    case DType::kInt32: return {false, 0, Load<int32_t>(p)};
    case DType::kInt64: return {false, 0, Load<int64_t>(p)};
    case DType::kFloat16: return {true, HalfToFloat(Load<uint16_t>(p)), 0};
    case DType::kBFloat16: return {true, BFloat16ToFloat(Load<uint16_t>(p)), 0};
    case DType::kFloat32: return {true, Load<float>(p), 0};
    case DType::kFloat64: return {true, Load<double>(p), 0};
    case DType::kUInt16: return {false, 0, Load<uint16_t>(p)};
    case DType::kUInt32: return {false, 0, Load<uint32_t>(p)};
    case DType::kUInt64: return {false, 0, static_cast<int64_t>(Load<uint64_t>(p)), true};
    case DType::kFloat8_e4m3fn:
    case DType::kFloat8_e5m2:
    case DType::kFloat8_e4m3fnuz:
    case DType::kFloat8_e5m2fnuz: return FromFloat8(Load<uint8_t>(p), from);
    default: return {false, 0, 0};
  }
}

// As PyTorch converts to a narrower float type: via float32.
float ToFloat(const Element& e, DType from) {
  if (e.has_f) return e.f;
  if (e.is_uint64) return static_cast<float>(static_cast<uint64_t>(e.n));
  if (!e.is_float) return static_cast<float>(e.n);
  return static_cast<float>(e.d);
}

double ToDouble(const Element& e) {
  if (e.is_uint64) return static_cast<double>(static_cast<uint64_t>(e.n));
  return e.is_float ? e.d : static_cast<double>(e.n);
}

template <typename T>
absl::Status StoreInt(uint8_t* p, const Element& e, size_t index) {
  if (!e.is_float) {
    Store<T>(p, static_cast<T>(e.n));  // wraps, as static_cast in PyTorch
    return absl::OkStatus();
  }
  // T is at most 32 bits here, so its limits are exact doubles.
  double t = std::trunc(e.d);
  if (!(t >= static_cast<double>(std::numeric_limits<T>::min()) &&
        t <= static_cast<double>(std::numeric_limits<T>::max()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "element ", index, " (", e.d, ") is out of range for the integer dtype"));
  }
  Store<T>(p, static_cast<T>(t));
  return absl::OkStatus();
}

absl::Status Encode(uint8_t* p, const Element& e, DType from, DType to, size_t index) {
  switch (to) {
    case DType::kBool:
      Store<uint8_t>(p, e.is_float ? (e.d != 0 || std::isnan(e.d)) : e.n != 0);
      return absl::OkStatus();
    case DType::kUInt8: return StoreInt<uint8_t>(p, e, index);
    case DType::kInt8: return StoreInt<int8_t>(p, e, index);
    case DType::kInt16: return StoreInt<int16_t>(p, e, index);
    case DType::kInt32: return StoreInt<int32_t>(p, e, index);
    case DType::kUInt16: return StoreInt<uint16_t>(p, e, index);
    case DType::kUInt32: return StoreInt<uint32_t>(p, e, index);
    case DType::kUInt64: {
      if (!e.is_float) {
        Store<uint64_t>(p, static_cast<uint64_t>(e.n));  // wraps
        return absl::OkStatus();
      }
      double t = std::trunc(e.d);
      if (!(t >= 0 && t < 18446744073709551616.0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "element ", index, " (", e.d, ") is out of range for uint64"));
      }
      Store<uint64_t>(p, static_cast<uint64_t>(t));
      return absl::OkStatus();
    }
    case DType::kFloat8_e4m3fn:
    case DType::kFloat8_e5m2:
    case DType::kFloat8_e4m3fnuz:
    case DType::kFloat8_e5m2fnuz:
      // As c10::Float8_*(float): wider types go through float32 first.
      Store<uint8_t>(p, FloatToFloat8(ToFloat(e, from), to));
      return absl::OkStatus();
    case DType::kInt64: {
      if (!e.is_float) {
        Store<int64_t>(p, e.n);
        return absl::OkStatus();
      }
      double t = std::trunc(e.d);
      if (!(t >= -9223372036854775808.0 && t < 9223372036854775808.0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "element ", index, " (", e.d, ") is out of range for int64"));
      }
      Store<int64_t>(p, static_cast<int64_t>(t));
      return absl::OkStatus();
    }
    case DType::kFloat16: Store<uint16_t>(p, FloatToHalf(ToFloat(e, from))); return absl::OkStatus();
    case DType::kBFloat16:
      Store<uint16_t>(p, FloatToBFloat16(ToFloat(e, from)));
      return absl::OkStatus();
    case DType::kFloat32: Store<float>(p, ToFloat(e, from)); return absl::OkStatus();
    case DType::kFloat64:
      Store<double>(p, ToDouble(e));
      return absl::OkStatus();
    default:
      return absl::UnimplementedError("complex casts are not supported");
  }
}

}  // namespace

// c10/util/Half.h: fp16_ieee_from_fp32_value (round to nearest even). NaN
// keeps its sign and the top 10 bits of its payload, quiet bit set: what
// torch 2.x's CPU conversion (F16C, vcvtps2ph) gives; for the usual quiet NaN
// (0x7fc00000) that is 0x7e00 as in torch 1.13.
uint16_t FloatToHalf(float f) {
  if (std::isnan(f)) {
    const uint32_t w = FloatBits(f);
    return static_cast<uint16_t>(((w >> 16) & 0x8000u) | 0x7e00u | ((w & 0x7fffffu) >> 13));
  }
  const float scale_to_inf = FloatFromBits(UINT32_C(0x77800000));   // 0x1.0p+112f
  const float scale_to_zero = FloatFromBits(UINT32_C(0x08800000));  // 0x1.0p-110f
  float base = (std::fabs(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = FloatBits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & UINT32_C(0x80000000);
  uint32_t bias = shl1_w & UINT32_C(0xFF000000);
  if (bias < UINT32_C(0x71000000)) bias = UINT32_C(0x71000000);
  base = FloatFromBits((bias >> 1) + UINT32_C(0x07800000)) + base;
  const uint32_t bits = FloatBits(base);
  const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
  const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) |
                               (shl1_w > UINT32_C(0xFF000000) ? UINT16_C(0x7E00) : nonsign));
}

// c10/util/Half.h: fp16_ieee_to_fp32_value.
float HalfToFloat(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & UINT32_C(0x80000000);
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = UINT32_C(0xE0) << 23;
  const float exp_scale = FloatFromBits(UINT32_C(0x7800000));  // 0x1.0p-112f
  const float normalized = FloatFromBits((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = UINT32_C(126) << 23;
  const float denormalized = FloatFromBits((two_w >> 17) | magic_mask) - 0.5f;
  const uint32_t cutoff = UINT32_C(1) << 27;
  return FloatFromBits(sign | (two_w < cutoff ? FloatBits(denormalized) : FloatBits(normalized)));
}

// c10/util/BFloat16.h: round_to_nearest_even.
uint16_t FloatToBFloat16(float f) {
  if (std::isnan(f)) return UINT16_C(0x7FC0);
  const uint32_t u = FloatBits(f);
  const uint32_t rounding_bias = ((u >> 16) & 1) + UINT32_C(0x7FFF);
  return static_cast<uint16_t>((u + rounding_bias) >> 16);
}

float BFloat16ToFloat(uint16_t bits) { return FloatFromBits(static_cast<uint32_t>(bits) << 16); }

absl::Status CheckCast(DType from, DType to) {
  if (from == to) return absl::OkStatus();
  if (IsComplex(from) || IsComplex(to)) {
    return absl::UnimplementedError(absl::StrCat("cast from ", DTypeName(from), " to ",
                                                 DTypeName(to), " is not supported"));
  }
  return absl::OkStatus();
}

absl::Status CastBytes(absl::Span<const uint8_t> in, DType from, DType to,
                       std::vector<uint8_t>* out) {
  if (absl::Status s = CheckCast(from, to); !s.ok()) return s;
  const size_t in_size = DTypeSize(from);
  const size_t out_size = DTypeSize(to);
  const size_t n = in.size() / in_size;
  out->resize(n * out_size);
  if (from == to) {
    if (n > 0) std::memcpy(out->data(), in.data(), in.size());
    return absl::OkStatus();
  }
  for (size_t i = 0; i < n; ++i) {
    Element e = Decode(in.data() + i * in_size, from);
    if (absl::Status s = Encode(out->data() + i * out_size, e, from, to, i); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace weightd
