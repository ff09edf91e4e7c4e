// Compiled with -mf16c: the header's F16C path must give the same bits as the
// portable code. Skipped (with a message) on CPUs without F16C.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "halfbyte/core/half.hpp"

TEST_CASE("fp16 F16C path equals the portable code", "[half][f16c]") {
  if (!__builtin_cpu_supports("f16c")) {
    WARN("skipped: no F16C on this CPU");
    return;
  }
  using namespace halfbyte;
  for (uint32_t i = 0; i < 65536; ++i) {
    const float a = fp16_to_fp32(uint16_t(i)), b = fp16_to_fp32_portable(uint16_t(i));
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
    REQUIRE(fp32_to_fp16(f) == fp32_to_fp16_portable(f));
  }
}
