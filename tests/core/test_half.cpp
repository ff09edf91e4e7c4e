// fp16 / bf16 conversion: exhaustive over all 65536 bit patterns, against values
// computed independently (ldexp from the IEEE definition, the compiler's _Float16).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "halfbyte/core/half.hpp"

using namespace halfbyte;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// binary16 value from its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m.
double fp16_value(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const double mag = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(double(1024 + m), e - 25);
  return s ? -mag : mag;
}

bool is_f16_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0; }

}  // namespace

TEST_CASE("fp16 -> fp32 is exact for all 65536 patterns", "[half]") {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    const float f = fp16_to_fp32_portable(h);
    INFO("h = 0x" << std::hex << i);
    REQUIRE(bits(f) == bits(fp16_to_fp32(h)));
    if ((h & 0x7C00) == 0x7C00) {
      if (h & 0x3FF) {  // NaN: sign and payload kept, quiet bit set
        REQUIRE(std::isnan(f));
        REQUIRE((bits(f) >> 31) == (h >> 15));
        REQUIRE(((bits(f) >> 13) & 0x3FF) == ((h & 0x3FF) | 0x200));
      } else {
        REQUIRE(std::isinf(f));
        REQUIRE(std::signbit(f) == bool(h >> 15));
      }
    } else {
      REQUIRE(double(f) == fp16_value(h));
      REQUIRE(std::signbit(f) == bool(h >> 15));  // -0 stays -0
    }
  }
}

TEST_CASE("fp32 -> fp16 round trips every fp16 value", "[half]") {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    const uint16_t back = fp32_to_fp16(fp16_to_fp32(h));
    INFO("h = 0x" << std::hex << i);
    if (is_f16_nan(h)) {
      REQUIRE(is_f16_nan(back));
      REQUIRE((back >> 15) == (h >> 15));
      REQUIRE(back == (h | 0x200));  // payload kept, made quiet
    } else {
      REQUIRE(back == h);
    }
    REQUIRE(fp32_to_fp16_portable(fp16_to_fp32_portable(h)) == back);
  }
}

TEST_CASE("fp32 -> fp16 rounds to nearest, ties to even, at every fp16 interval", "[half]") {
  // For each pair of adjacent finite fp16 values a < b (both signs, subnormals
  // included), the midpoint rounds to the one with the even mantissa, and one fp32
  // ulp either side of it rounds to the nearer.
  for (uint32_t h = 0; h < 0x7BFF; ++h) {
    for (uint32_t sign : {0u, 0x8000u}) {
      const uint16_t lo = uint16_t(h | sign), hi = uint16_t((h + 1) | sign);
      const double a = fp16_value(lo), b = fp16_value(hi);
      const float mid = float((a + b) / 2);  // exact: 12 significant bits
      REQUIRE(double(mid) == (a + b) / 2);
      INFO("between 0x" << std::hex << lo << " and 0x" << hi);
      REQUIRE(fp32_to_fp16_portable(mid) == ((h & 1) ? hi : lo));
      const float toward_a = std::nextafter(mid, float(a)), toward_b = std::nextafter(mid, float(b));
      REQUIRE(fp32_to_fp16_portable(toward_a) == lo);
      REQUIRE(fp32_to_fp16_portable(toward_b) == hi);
      REQUIRE(fp32_to_fp16(mid) == fp32_to_fp16_portable(mid));
    }
  }
}

TEST_CASE("fp32 -> fp16 overflow, underflow and specials", "[half]") {
  REQUIRE(fp32_to_fp16_portable(65504.0f) == 0x7BFF);
  REQUIRE(fp32_to_fp16_portable(std::nextafter(65520.0f, 0.0f)) == 0x7BFF);
  REQUIRE(fp32_to_fp16_portable(65520.0f) == 0x7C00);  // tie with 2^16 rounds to even: Inf
  REQUIRE(fp32_to_fp16_portable(-1e30f) == 0xFC00);
  REQUIRE(fp32_to_fp16_portable(INFINITY) == 0x7C00);
  REQUIRE(fp32_to_fp16_portable(-INFINITY) == 0xFC00);
  REQUIRE(is_f16_nan(fp32_to_fp16_portable(NAN)));
  REQUIRE(is_f16_nan(fp32_to_fp16_portable(from_bits(0x7F800001u))));  // signalling NaN stays NaN
  REQUIRE(fp32_to_fp16_portable(from_bits(0xFFC00000u)) == 0xFE00);
  REQUIRE(fp32_to_fp16_portable(std::ldexp(1.0f, -25)) == 0x0000);  // tie with 0: even
  REQUIRE(fp32_to_fp16_portable(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  REQUIRE(fp32_to_fp16_portable(-std::ldexp(1.0f, -26)) == 0x8000);
  REQUIRE(fp32_to_fp16_portable(1e-40f) == 0x0000);                  // fp32 subnormal
  REQUIRE(fp32_to_fp16_portable(std::ldexp(1.0f, -14)) == 0x0400);   // smallest normal
  REQUIRE(fp32_to_fp16_portable(std::ldexp(1023.5f, -24)) == 0x0400);  // subnormal rounds up to normal
}

#if defined(__FLT16_MAX__) && (defined(__x86_64__) || defined(__aarch64__))
#if defined(__aarch64__) && !defined(__clang__) && __GNUC__ < 13
using CompilerF16 = __fp16;  // GCC < 13 has no _Float16 in C++ on AArch64; __fp16 is IEEE there
#else
using CompilerF16 = _Float16;
#endif
TEST_CASE("fp32 -> fp16 matches the compiler's _Float16 on random fp32 bit patterns", "[half]") {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    const float f = from_bits(rng());
    const CompilerF16 ref = static_cast<CompilerF16>(f);
    uint16_t rb;
    std::memcpy(&rb, &ref, 2);
    const uint16_t got = fp32_to_fp16_portable(f);
    INFO("f bits = 0x" << std::hex << bits(f));
    if (std::isnan(f))
      REQUIRE(is_f16_nan(got));
    else
      REQUIRE(got == rb);
  }
}
#endif

TEST_CASE("bf16 <-> fp32 exhaustive", "[half]") {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t b = uint16_t(i);
    const float f = bf16_to_fp32(b);
    INFO("b = 0x" << std::hex << i);
    REQUIRE(bits(f) == (i << 16));
    const uint16_t back = fp32_to_bf16(f);
    if (std::isnan(f)) {
      REQUIRE(std::isnan(bf16_to_fp32(back)));
      REQUIRE((back & 0x8000) == (b & 0x8000));
    } else {
      REQUIRE(back == b);
    }
  }
  // Ties to even and carries, at every interval between adjacent finite bf16 values.
  for (uint32_t b = 0; b < 0x7F7F; ++b) {
    const uint32_t lo = b << 16;
    const float mid = from_bits(lo | 0x8000u);  // exactly halfway to b + 1
    INFO("b = 0x" << std::hex << b);
    REQUIRE(fp32_to_bf16(mid) == ((b & 1) ? b + 1 : b));
    REQUIRE(fp32_to_bf16(from_bits(lo | 0x7FFFu)) == b);
    REQUIRE(fp32_to_bf16(from_bits(lo | 0x8001u)) == b + 1);
  }
  REQUIRE(fp32_to_bf16(from_bits(0x7F7F8000u)) == 0x7F80);  // max finite + half ulp -> Inf
  REQUIRE(fp32_to_bf16(INFINITY) == 0x7F80);
  REQUIRE(std::isnan(bf16_to_fp32(fp32_to_bf16(from_bits(0x7F800001u)))));  // low payload only
}

TEST_CASE("f16 and bf16 storage types", "[half]") {
  REQUIRE(f16::from_float(1.5f).bits == 0x3E00);
  REQUIRE(f16{0x3E00}.to_float() == 1.5f);
  REQUIRE(bf16::from_float(1.5f).bits == 0x3FC0);
  REQUIRE(to_float(bf16{0x3FC0}) == 1.5f);
}
