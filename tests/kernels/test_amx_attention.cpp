// Prompt attention on bf16 tiles (kernels/amx/tile_attention.inl, AttnBlockArgs in
// kernel_table.hpp) against a double-precision causal attention, on the emulated
// tiles (any AVX-512 CPU) and on AMX hardware where it exists: fp32 and fp16 caches,
// head dims 32/64/128, 1-4 heads per KV head, runs of 1-40 tokens starting at
// positions 0-99 (row steps with tails, keys around the 16/32 blocks), NaN in the
// cache's padding keys (never read into a result).
//
// Bound per output (q, k, v and the softmax weights rounded to bf16, fp32 sums):
//   |out_d - out*_d| <= (exp(2 E) - 1 + 2^-6 + nk 2^-23) sum_j p*_j |v_jd| + 1e-30,
//   E = scale (2^-7 + 2^-16 + hd 2^-23) max_j sum_d |q_d k_jd|
// (a score moves by at most E, a normalised weight by a factor within exp(+-2E); the
// rounding of the weights and of V adds 2^-8 each, the sum of rounded weights 2^-8).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "amx_test_util.hpp"
#include "kernels/attention_block_case.hpp"
#include "halfbyte/core/half.hpp"
#include "halfbyte/halfbyte.hpp"
#include "kernel_table.hpp"

using namespace halfbyte;
using namespace halfbyte::test;
namespace amx = halfbyte::kernels::amx;

namespace {

// Runs fn on one case; returns the worst error as a fraction of the bound.
double run_case(kernels::AttendBlockFn fn, const BlockCase& c, uint64_t seed) {
  const BlockInputs in = make_block_inputs(c, seed);
  const int64_t n0 = in.n0, nk_max = in.nk_max, ldq = in.ldq, ldo = in.ldo, ldv = in.ldv;
  const std::vector<float>&q = in.q, &k = in.k, &v = in.v;
  std::vector<float> out(size_t(c.T * ldo), -7.0f);
  const float scale = 1.0f / std::sqrt(float(c.hd));
  fn(in.args(c, scale, out.data()));

  double worst = 0;
  std::vector<double> s(static_cast<size_t>(nk_max)), qk_abs(static_cast<size_t>(nk_max));
  for (int i = 0; i < c.T; ++i)
    for (int h = 0; h < c.group; ++h) {
      const int64_t nk = n0 + i;
      const float* qr = q.data() + i * ldq + h * c.hd;
      double mx = -INFINITY, qk_max = 0;
      for (int64_t j = 0; j < nk; ++j) {
        double acc = 0, abs = 0;
        for (int d = 0; d < c.hd; ++d) {
          acc += double(qr[d]) * k[size_t(j * c.hd + d)];
          abs += std::fabs(double(qr[d]) * k[size_t(j * c.hd + d)]);
        }
        s[size_t(j)] = acc * scale;
        mx = std::max(mx, s[size_t(j)]);
        qk_max = std::max(qk_max, abs);
      }
      double sum = 0;
      for (int64_t j = 0; j < nk; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
      const double E = double(scale) * (std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + c.hd * std::ldexp(1.0, -23)) * qk_max;
      const double rel = std::expm1(2 * E) + std::ldexp(1.0, -6) + double(nk) * std::ldexp(1.0, -23);
      for (int d = 0; d < c.hd; ++d) {
        double want = 0, mag = 0;
        for (int64_t j = 0; j < nk; ++j) {
          const double p = s[size_t(j)] / sum, vj = v[size_t(j * ldv + d)];
          want += p * vj;
          mag += p * std::fabs(vj);
        }
        const float got = out[size_t(i * ldo + h * c.hd + d)];
        const double bound = rel * mag + 1e-30, err = std::fabs(double(got) - want);
        INFO("T=" << c.T << " group=" << c.group << " hd=" << c.hd << " pos0=" << c.pos0 << (c.f16 ? " f16" : " f32")
                  << " q_scale=" << c.q_scale << " at token " << i << " head " << h << " dim " << d << ": got " << got
                  << ", want " << want << ", bound " << bound);
        REQUIRE(err <= bound);
        worst = std::max(worst, err / bound);
      }
    }
  // Outside the rows' hd values: untouched.
  for (int i = 0; i < c.T; ++i)
    for (int64_t x = int64_t(c.group) * c.hd; x < ldo; ++x) REQUIRE(out[size_t(i * ldo + x)] == -7.0f);
  return worst;
}

std::pair<int, double> check_attend_block(kernels::AttendBlockFn (*fn)(bool)) {
  const BlockCase cases[] = {
      {1, 1, 64, 0, false, 1.0f},   {5, 3, 64, 0, false, 1.0f},   {16, 1, 32, 7, false, 1.0f},
      {6, 3, 64, 10, true, 1.0f},   {40, 3, 64, 99, false, 1.0f}, {17, 4, 128, 31, true, 1.0f},
      {11, 2, 96, 15, false, 3.0f}, {33, 1, 64, 0, true, 3.0f},   {3, 4, 32, 60, false, 0.2f},
  };
  int n = 0;
  double worst = 0;
  uint64_t seed = 41000;
  for (const BlockCase& c : cases) {
    worst = std::max(worst, run_case(fn(c.f16), c, seed++));
    ++n;
  }
  return {n, worst};
}

}  // namespace

TEST_CASE("amx: prompt attention on emulated bf16 tiles, within its bound of the exact attention", "[amx][attention]") {
  on_emulated_tiles("amx attention", [](const char*) {
    const auto [cases, worst] = check_attend_block(amx::emulated_tile_attend_block);
    return within_bound(cases, worst);
  });
}

TEST_CASE("amx: prompt attention on AMX hardware bf16 tiles, within its bound of the exact attention", "[amx][attention]") {
  on_amx_hardware("amx attention", true, [](const char*) {
    const auto [cases, worst] = check_attend_block(amx::tile_attend_block);
    return within_bound(cases, worst);
  });
}
