// Prompt attention on bf16 tiles (kernels/amx/tile_attention.inl) against a
// double-precision causal attention (tests/kernels/attention_bf16_check.hpp states the
// cases and the bound), on the emulated tiles (any AVX-512 CPU) and on AMX hardware
// where it exists.
#include <catch2/catch.hpp>

#include "amx_test_util.hpp"
#include "kernels/attention_bf16_check.hpp"
#include "kernel_table.hpp"

using namespace halfbyte;
using namespace halfbyte::test;
namespace amx = halfbyte::kernels::amx;

TEST_CASE("amx: prompt attention on emulated bf16 tiles, within its bound of the exact attention", "[amx][attention]") {
  on_emulated_tiles("amx attention", [](const char*) {
    const auto [cases, worst] = check_bf16_attend_block(amx::emulated_tile_attend_block);
    check_bf16_rows_alone(amx::emulated_tile_attend_block);
    return within_bound(cases, worst) + ", every token alone equal to its row in the run";
  });
}

TEST_CASE("amx: prompt attention on AMX hardware bf16 tiles, within its bound of the exact attention", "[amx][attention]") {
  on_amx_hardware("amx attention", true, [](const char*) {
    const auto [cases, worst] = check_bf16_attend_block(amx::tile_attend_block);
    check_bf16_rows_alone(amx::tile_attend_block);
    return within_bound(cases, worst) + ", every token alone equal to its row in the run";
  });
}
