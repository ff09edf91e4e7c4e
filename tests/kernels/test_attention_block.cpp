// Prompt attention (attend_block: T consecutive tokens x `group` heads, causal) of
// every vector ISA this CPU runs, against a double-precision causal attention: fp32
// and fp16 caches, head dims with and without vector tails, 1-4 heads per KV head,
// runs of 1-40 tokens (blocks of 16 with tails) from positions 0-99, NaN in the
// cache's padding keys (never read into a result). amx's bf16 tiles have their own
// test and bound (test_amx_attention.cpp).
//
// Bound: the per-token kernels' (test_attention.cpp): outputs are convex combinations
// of V rows, so |out - oracle| <= 2e-5 max|V| (fp32 arithmetic, vector exp ~1 ulp).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

#include "kernel_table.hpp"
#include "kernels/attention_block_case.hpp"
#include "kernels/kernel_test_util.hpp"

namespace halfbyte::test {
namespace {

// Runs the active table's attend_block on one case; returns max |out - oracle| / max|V|.
double run_case(const BlockCase& c, uint64_t seed) {
  const BlockInputs in = make_block_inputs(c, seed);
  const int64_t n0 = in.n0, nk_max = in.nk_max, ldq = in.ldq, ldo = in.ldo, ldv = in.ldv;
  const std::vector<float>&q = in.q, &k = in.k, &v = in.v;
  std::vector<float> out(size_t(c.T * ldo), -7.0f);
  const float scale = 1.0f / std::sqrt(float(c.hd));
  kernels::active().attend_block[c.f16 ? 1 : 0](in.args(c, scale, out.data()));

  double vmax = 0.0, err = 0.0;
  for (int64_t j = 0; j < nk_max; ++j)
    for (int d = 0; d < c.hd; ++d) vmax = std::max(vmax, std::abs(double(v[size_t(j * ldv + d)])));
  std::vector<double> s(static_cast<size_t>(nk_max));
  for (int i = 0; i < c.T; ++i)
    for (int h = 0; h < c.group; ++h) {
      const int64_t nk = n0 + i;  // causal: token i sees keys [0, n0 + i)
      const float* qr = q.data() + i * ldq + h * c.hd;
      double mx = -INFINITY, sum = 0.0;
      for (int64_t j = 0; j < nk; ++j) {
        double acc = 0.0;
        for (int d = 0; d < c.hd; ++d) acc += double(qr[d]) * k[size_t(j * c.hd + d)];
        s[size_t(j)] = acc * scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      for (int64_t j = 0; j < nk; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
      for (int d = 0; d < c.hd; ++d) {
        double ref = 0.0;
        for (int64_t j = 0; j < nk; ++j) ref += s[size_t(j)] * v[size_t(j * ldv + d)];
        ref /= sum;
        const double got = out[size_t(i * ldo + h * c.hd + d)];
        if (!std::isfinite(got)) return INFINITY;
        err = std::max(err, std::abs(got - ref));
      }
    }
  for (int i = 0; i < c.T; ++i)  // past the rows' group * hd values: untouched
    for (int64_t x = int64_t(c.group) * c.hd; x < ldo; ++x)
      if (out[size_t(i * ldo + x)] != -7.0f) return INFINITY;
  return err / vmax;
}

}  // namespace

TEST_CASE("prompt attention (attend_block) of every vector ISA matches the causal oracle", "[kernels][attention]") {
  const BlockCase cases[] = {
      {1, 1, 64, 0, false, 1.0f},  {5, 3, 64, 0, false, 1.0f},  {16, 1, 32, 7, false, 1.0f},
      {17, 3, 64, 10, true, 1.0f}, {40, 3, 64, 99, false, 1.0f}, {17, 4, 128, 31, true, 1.0f},
      {11, 2, 72, 15, false, 8.0f}, {33, 1, 40, 0, true, 8.0f},  {3, 4, 6, 60, false, 0.2f},
      {32, 3, 64, 0, true, 1.0f},
  };
  for (const auto& name : isas_under_test()) {
    IsaGuard guard;
    set_isa(name);
    if (kernels::active().attend_block[0] == nullptr) {
      std::printf("attend_block %-9s: none (per-token attention)\n", name.c_str());
      continue;
    }
    double worst = 0.0;
    uint64_t seed = 77;
    for (const BlockCase& c : cases) {
      const double e = run_case(c, seed++);
      INFO(name << " T=" << c.T << " group=" << c.group << " hd=" << c.hd << " pos0=" << c.pos0
                << (c.f16 ? " fp16" : " fp32") << " q_scale=" << c.q_scale << " err=" << e);
      REQUIRE(e <= 2e-5);
      worst = std::max(worst, e);
    }
    std::printf("attend_block %-9s worst error / max|V| = %.2e\n", name.c_str(), worst);
  }
}

}  // namespace halfbyte::test
