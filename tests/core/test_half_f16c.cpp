// The F16C instructions (used by the x86 SIMD kernels) against the portable
// conversion. Compiled with -mf16c; skipped (with a message) on CPUs without F16C.
#include <catch2/catch.hpp>

#include <immintrin.h>

#include <cstring>
#include <random>

#include "halfbyte/core/half.hpp"

namespace {
float f16c_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
uint16_t f16c_from_fp32(float f) { return uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); }
}  // namespace

TEST_CASE("fp16: F16C instructions equal the portable code", "[half][f16c]") {
  if (!__builtin_cpu_supports("f16c")) {
    WARN("skipped: no F16C on this CPU");
    return;
  }
  using namespace halfbyte;
  for (uint32_t i = 0; i < 65536; ++i) {
    const float a = f16c_to_fp32(uint16_t(i)), b = fp16_to_fp32_portable(uint16_t(i));
    uint32_t ua, ub;
    std::memcpy(&ua, &a, 4);
    std::memcpy(&ub, &b, 4);
    INFO("h = 0x" << std::hex << i);
    REQUIRE(ua == ub);
  }
  std::mt19937 rng(11);
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t u = rng();
    float f;
    std::memcpy(&f, &u, 4);
    INFO("f bits = 0x" << std::hex << u);
    REQUIRE(f16c_from_fp32(f) == fp32_to_fp16_portable(f));
  }
}
