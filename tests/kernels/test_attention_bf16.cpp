// avx512's prompt attention on AVX512_BF16 dot products (kernels/avx512/
// attention_bf16.cpp) against a double-precision causal attention, within the bound
// tests/kernels/attention_bf16_check.hpp states (the same rounding as amx's tiles);
// skipped, saying so, on CPUs without AVX-512 or AVX512_BF16. Also: the kernel table
// offers it exactly there.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cpu_features.hpp"
#include "halfbyte/runtime.hpp"
#include "kernels/attention_bf16_check.hpp"
#include "kernels/kernel_test_util.hpp"
#include "kernel_table.hpp"

using namespace halfbyte;
using namespace halfbyte::test;

namespace {

bool has_avx512_bf16() {
  const auto isas = available_isas();
  return std::find(isas.begin(), isas.end(), "avx512") != isas.end() && kernels::cpu_features().avx512bf16;
}

}  // namespace

TEST_CASE("avx512: prompt attention on bf16 dot products, within its bound of the exact attention",
          "[kernels][attention]") {
  if (!has_avx512_bf16()) {
    std::printf("avx512 bf16 attention: skipped: no AVX-512 with AVX512_BF16 on this CPU\n");
    return;
  }
  const auto [cases, worst] = check_bf16_attend_block(kernels::avx512::bf16_attend_block);
  std::printf("avx512 bf16 attention: %d cases within the bound (worst %.3f of it)\n", cases, worst);
  CHECK(cases > 0);
  const int runs = check_bf16_rows_alone(kernels::avx512::bf16_attend_block);
  std::printf("avx512 bf16 attention: %d runs, every token alone equal to its row in the run\n", runs);
}

TEST_CASE("avx512: the kernel table offers bf16 prompt attention exactly where the CPU has AVX512_BF16",
          "[kernels][attention]") {
  const auto isas = available_isas();
  if (std::find(isas.begin(), isas.end(), "avx512") == isas.end()) {
    std::printf("avx512 bf16 attention table: skipped: no AVX-512 on this CPU\n");
    return;
  }
  IsaGuard guard;
  set_isa("avx512");
  const kernels::KernelTable& t = kernels::active();
  const char* env = std::getenv("HALFBYTE_BF16_ATTENTION");
  const bool wanted = kernels::cpu_features().avx512bf16 && !(env && std::strcmp(env, "0") == 0);
  CHECK((t.attend_block_bf16[0] != nullptr) == wanted);
  CHECK((t.attend_block_bf16[1] != nullptr) == wanted);
  CHECK(t.attend_block[0] != nullptr);  // the fp32 kernel stays, for fp32 precision
}
