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
#include "halfbyte/core/half.hpp"
#include "halfbyte/halfbyte.hpp"
#include "kernel_table.hpp"

using namespace halfbyte;
using namespace halfbyte::test;
namespace amx = halfbyte::kernels::amx;

namespace {

struct Case {
  int T, group, hd;
  int64_t pos0;  // position of the run's first token: it sees pos0 + 1 keys
  bool f16;
  float q_scale;
};

// Runs fn on one case; returns the worst error as a fraction of the bound.
double run_case(kernels::AttendBlockFn fn, const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n0 = c.pos0 + 1, nk_max = n0 + c.T - 1;
  constexpr int64_t kKt = kernels::kKeyTile;
  const int64_t ldk = (nk_max + 5 + kKt - 1) / kKt * kKt;  // padding keys past the last, as in a cache
  const int64_t ldq = int64_t(c.group) * c.hd + 3, ldo = int64_t(c.group) * c.hd + 5, ldv = c.hd + 7;
  std::vector<float> q(size_t(c.T * ldq)), k(size_t(ldk * c.hd)), v(size_t(ldk * ldv));
  for (float& x : q) x = nd(rng) * c.q_scale;
  for (float& x : k) x = nd(rng);
  for (float& x : v) x = nd(rng);
  if (c.f16) {
    for (float& x : k) x = fp16_to_fp32(fp32_to_fp16(x));
    for (float& x : v) x = fp16_to_fp32(fp32_to_fp16(x));
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t j = nk_max; j < ldk; ++j)
    for (int d = 0; d < c.hd; ++d) k[size_t(j * c.hd + d)] = nan;  // padding keys: never in a result
  // The cache's layouts: K in tiles of kKeyTile keys [tile][hd][kKeyTile], V rows at ldv.
  std::vector<float> kt(size_t(ldk * c.hd)), vv = v;
  for (int64_t j = 0; j < ldk; ++j)
    for (int d = 0; d < c.hd; ++d) kt[size_t((j / kKt) * c.hd * kKt + d * kKt + j % kKt)] = k[size_t(j * c.hd + d)];
  std::vector<uint16_t> kt16(kt.size()), v16(vv.size());
  for (size_t i = 0; i < kt.size(); ++i) kt16[i] = fp32_to_fp16(kt[i]);
  for (size_t i = 0; i < vv.size(); ++i) v16[i] = fp32_to_fp16(vv[i]);

  std::vector<float> out(size_t(c.T * ldo), -7.0f);
  const float scale = 1.0f / std::sqrt(float(c.hd));
  const kernels::AttnBlockArgs a{q.data(), ldq, c.T, c.group,
                                 c.f16 ? static_cast<const void*>(kt16.data()) : kt.data(),
                                 c.f16 ? static_cast<const void*>(v16.data()) : vv.data(),
                                 ldv, n0, c.hd, scale, out.data(), ldo};
  fn(a);

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
  const Case cases[] = {
      {1, 1, 64, 0, false, 1.0f},   {5, 3, 64, 0, false, 1.0f},   {16, 1, 32, 7, false, 1.0f},
      {6, 3, 64, 10, true, 1.0f},   {40, 3, 64, 99, false, 1.0f}, {17, 4, 128, 31, true, 1.0f},
      {11, 2, 96, 15, false, 3.0f}, {33, 1, 64, 0, true, 3.0f},   {3, 4, 32, 60, false, 0.2f},
  };
  int n = 0;
  double worst = 0;
  uint64_t seed = 41000;
  for (const Case& c : cases) {
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
