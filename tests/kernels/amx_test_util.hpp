// The two runs of an AMX kernel check (tests/kernels/test_amx*.cpp): on the emulated
// tiles (any AVX-512 CPU: kernels/amx_tile_emu.cpp) and on the tile instructions
// (AMX CPUs). Each prints one line, what it verified or why it was skipped, so CI's
// output shows whether the AMX tests ran on hardware.
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>

#include "amx_tile.hpp"
#include "cpu_features.hpp"
#include "halfbyte/halfbyte.hpp"

namespace halfbyte::test {

inline bool isa_available(const char* name) {
  const auto a = available_isas();
  return std::find(a.begin(), a.end(), name) != a.end();
}

// "N cases within the bound (worst X of it)".
inline std::string within_bound(int cases, double worst) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%d cases within the bound (worst %.3f of it)", cases, worst);
  return buf;
}

// check(label) runs the checks (REQUIRE inside) and returns what it verified.
template <class Check>
void on_emulated_tiles(const std::string& what, Check&& check) {
  const std::string label = what + " (emulated)";
  if (!isa_available("avx512")) {
    std::printf("%s: skipped: the emulated tile kernel needs AVX-512, which this CPU lacks\n", label.c_str());
    return;
  }
  const std::string said = check(label.c_str());
  std::printf("%s: %s\n", label.c_str(), said.c_str());
  kernels::amx::emu::tilerelease();
}

// bf16: the kernel needs AMX-BF16 besides AMX-TILE and AMX-INT8.
template <class Check>
void on_amx_hardware(const std::string& what, bool bf16, Check&& check) {
  const std::string label = what + " (hardware)";
  if (!isa_available("amx") || (bf16 && !kernels::cpu_features().amx_bf16)) {
    std::printf("%s: skipped: no AMX%s on this CPU (emulated tile kernel tested)\n", label.c_str(), bf16 ? "-BF16" : "");
    return;
  }
  const std::string said = check(label.c_str());
  std::printf("%s: %s\n", label.c_str(), said.c_str());
}

}  // namespace halfbyte::test
