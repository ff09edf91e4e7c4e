// IEEE 754 binary16 (fp16) and bfloat16 <-> fp32 conversion.
//
// Both directions are exact where possible; fp32 -> 16-bit rounds to nearest,
// ties to even, overflows to +-Inf, keeps NaN a (quiet) NaN with its sign, and
// produces fp16 subnormals correctly. Portable code on every architecture and
// with any compile flags: these are inline functions, and a copy compiled with
// -mf16c in one translation unit could be the one the linker keeps for all (an
// ODR trap for run-time ISA dispatch); and GCC folds __fp16 round trips on
// AArch64, which would leave signalling NaNs unquieted. The SIMD kernels convert
// with their own intrinsics.
#pragma once

#include <cstdint>
#include <cstring>

namespace halfbyte {

namespace detail {
inline uint32_t f32_bits(float f) noexcept {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace detail

// ---- fp16 --------------------------------------------------------------------------

// Portable fp16 -> fp32 (exact for every input).
inline float fp16_to_fp32_portable(uint16_t h) noexcept {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {  // Inf / NaN: keep payload, force quiet bit on NaN
    bits = sign | 0x7F800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {  // +-0
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (uint32_t(112 - e) << 23) | ((mant & 0x3FFu) << 13);
  }
  return detail::bits_f32(bits);
}

// Portable fp32 -> fp16, round to nearest even.
inline uint16_t fp32_to_fp16_portable(float f) noexcept {
  const uint32_t x = detail::f32_bits(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) {  // NaN: keep the top payload bits, force quiet
    return uint16_t(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
  }
  if (ax >= 0x477FF000u) {  // >= 65520 (halfway to 2^16) rounds to Inf
    return uint16_t(sign | 0x7C00u);
  }
  if (ax < 0x38800000u) {  // below the smallest normal 2^-14: subnormal or zero
    if (ax < 0x33000000u) return sign;  // < 2^-25 (half the smallest subnormal): 0
    const uint32_t e = ax >> 23;           // 102..112
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - e;       // 14..24: value = m * 2^(e-150), unit 2^-24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return uint16_t(sign | q);  // q may carry into the exponent: still correct
  }
  // normal: rebias exponent, round 13 dropped bits to nearest even
  uint32_t r = ax - 0x38000000u;  // exponent 127 -> 15
  r += 0x0FFFu + ((r >> 13) & 1u);
  return uint16_t(sign | (r >> 13));
}

inline float fp16_to_fp32(uint16_t h) noexcept { return fp16_to_fp32_portable(h); }

inline uint16_t fp32_to_fp16(float f) noexcept { return fp32_to_fp16_portable(f); }

// ---- bf16 --------------------------------------------------------------------------

inline float bf16_to_fp32(uint16_t b) noexcept { return detail::bits_f32(uint32_t(b) << 16); }

// Round to nearest even; NaN stays NaN (quiet), Inf stays Inf, large finite
// values round up to Inf as IEEE requires.
inline uint16_t fp32_to_bf16(float f) noexcept {
  const uint32_t x = detail::f32_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((x >> 16) | 0x0040u);
  return uint16_t((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

// ---- 16-bit storage types ------------------------------------------------------------
// Plain wrappers so that fp16 and bf16 data cannot be confused with each other or
// with uint16_t in overloads. Trivially copyable, 2 bytes, no implicit arithmetic.
struct f16 {
  uint16_t bits = 0;
  static f16 from_float(float f) noexcept { return f16{fp32_to_fp16(f)}; }
  float to_float() const noexcept { return fp16_to_fp32(bits); }
};
struct bf16 {
  uint16_t bits = 0;
  static bf16 from_float(float f) noexcept { return bf16{fp32_to_bf16(f)}; }
  float to_float() const noexcept { return bf16_to_fp32(bits); }
};
static_assert(sizeof(f16) == 2 && sizeof(bf16) == 2, "16-bit types must be 2 bytes");

inline float to_float(float v) noexcept { return v; }
inline float to_float(f16 v) noexcept { return v.to_float(); }
inline float to_float(bf16 v) noexcept { return v.to_float(); }

}  // namespace halfbyte
