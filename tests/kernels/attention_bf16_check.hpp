// Prompt attention rounded to bf16 (KernelTable::attend_block_bf16: amx's tiles in
// test_amx_attention.cpp, avx512's vdpbf16ps in test_attention_bf16.cpp) against a
// double-precision causal attention: fp32 and fp16 caches, head dims 32/64/96/128,
// 1-4 heads per KV head, runs of 1-40 tokens starting at positions 0-99 (row steps
// with tails, keys around the 16/32 blocks), NaN in the cache's padding keys (never
// read into a result).
//
// Bound per output (q, k, v and the softmax weights rounded to bf16, fp32 sums):
//   |out_d - out*_d| <= (exp(2 E) - 1 + 2^-6 + nk 2^-23) sum_j p*_j |v_jd| + 1e-30,
//   E = scale (2^-7 + 2^-16 + hd 2^-23) max_j sum_d |q_d k_jd|
// (a score moves by at most E, a normalised weight by a factor within exp(+-2E); the
// rounding of the weights and of V adds 2^-8 each, the sum of rounded weights 2^-8).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/attention_block_case.hpp"
#include "kernel_table.hpp"

namespace halfbyte::test {

// Runs fn on one case; returns the worst error as a fraction of the bound.
inline double bf16_block_case(kernels::AttendBlockFn fn, const BlockCase& c, uint64_t seed) {
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

// The cases, each on fn(its cache is fp16); returns (cases, worst error / bound).
inline std::pair<int, double> check_bf16_attend_block(kernels::AttendBlockFn (*fn)(bool)) {
  const BlockCase cases[] = {
      {1, 1, 64, 0, false, 1.0f},   {5, 3, 64, 0, false, 1.0f},   {16, 1, 32, 7, false, 1.0f},
      {6, 3, 64, 10, true, 1.0f},   {40, 3, 64, 99, false, 1.0f}, {17, 4, 128, 31, true, 1.0f},
      {11, 2, 96, 15, false, 3.0f}, {33, 1, 64, 0, true, 3.0f},   {3, 4, 32, 60, false, 0.2f},
  };
  int n = 0;
  double worst = 0;
  uint64_t seed = 41000;
  for (const BlockCase& c : cases) {
    worst = std::max(worst, bf16_block_case(fn(c.f16), c, seed++));
    ++n;
  }
  return {n, worst};
}


// A row's bits do not depend on the call's other rows (the decoder sends a token
// alone when decoding and inside a run of a prompt, and must get the same result):
// every token of a run, attended alone (T = 1 at its position), equals the run's row
// exactly. Returns the number of runs checked.
inline int check_bf16_rows_alone(kernels::AttendBlockFn (*fn)(bool)) {
  const BlockCase cases[] = {{40, 3, 64, 0, true, 1.0f}, {23, 1, 128, 17, false, 1.0f}, {7, 4, 32, 45, true, 2.0f}};
  int n = 0;
  uint64_t seed = 52000;
  for (const BlockCase& c : cases) {
    const BlockInputs in = make_block_inputs(c, seed++);
    const float scale = 1.0f / std::sqrt(float(c.hd));
    std::vector<float> run(size_t(c.T * in.ldo), -7.0f), alone(run.size(), -7.0f);
    fn(c.f16)(in.args(c, scale, run.data()));
    for (int i = 0; i < c.T; ++i) {
      kernels::AttnBlockArgs a = in.args(c, scale, alone.data() + i * in.ldo);
      a.q += i * in.ldq;
      a.T = 1;
      a.n0 += i;
      fn(c.f16)(a);
    }
    for (size_t x = 0; x < run.size(); ++x) {
      INFO("T=" << c.T << " group=" << c.group << " hd=" << c.hd << " pos0=" << c.pos0 << " at " << x / size_t(in.ldo)
                << ", " << x % size_t(in.ldo));
      REQUIRE(std::memcmp(&run[x], &alone[x], sizeof(float)) == 0);
    }
    ++n;
  }
  return n;
}

}  // namespace halfbyte::test
