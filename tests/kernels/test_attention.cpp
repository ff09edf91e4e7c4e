// Attention and SwiGLU kernels of every ISA this CPU runs, against a
// double-precision oracle on random shapes (odd row counts, key counts around
// the 16/32-key blocks, head sizes with and without vector tails), fp32 and fp16
// caches, with NaN in the padding that must be ignored.
//
// Bounds: attention outputs are convex combinations of V rows, so errors are
// measured relative to max|V|: <= 2e-5 (fp32 arithmetic over up to 257 keys and
// 128 dims, vector exp ~1 ulp); where asked for, each row's max score within 2e-5
// (1 + |max|) and sum of exponentials within 1e-4 relative (a score's fp32 error,
// times the sum). silu(g) * u: <= 4e-6 relative (exp, one division).
// pack_keys (a copy into the tiled layout): exact, padding keys zero.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "halfbyte/core/half.hpp"
#include "kernel_table.hpp"
#include "kernels/kernel_test_util.hpp"

namespace halfbyte::test {
namespace {

struct Case {
  int M;
  int64_t n_keys;
  int hd;
  bool f16;
  float q_scale;  // larger: sharper softmax, scores up to ~+-80
  bool strided_v;  // V rows at a stride wider than hd (an encoder's fused Q/K/V output)
};

// Runs the active table's kernel on one random case; returns max |out - oracle| / max|V|.
double run_case(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t ldk = (c.n_keys + 5 + 31) / 32 * 32;  // padding past n_keys, as in a cache
  const int64_t ldq = c.hd + 3, ldo = c.hd + 5;
  const int64_t ldv = c.strided_v ? c.hd + 7 : c.hd;  // V rows in place in a wider matrix
  std::vector<float> q(size_t(c.M * ldq)), k(size_t(c.hd * ldk)), v(size_t(ldk * ldv));
  for (float& x : q) x = nd(rng) * c.q_scale;
  for (float& x : k) x = nd(rng);
  for (float& x : v) x = nd(rng);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int d = 0; d < c.hd; ++d)
    for (int64_t j = c.n_keys; j < ldk; ++j) k[size_t(d * ldk + j)] = nan;  // padding: must be ignored
  for (int64_t j = 0; j < ldk; ++j)
    for (int64_t d = c.hd; d < ldv; ++d) v[size_t(j * ldv + d)] = nan;  // past hd in a V row: ignored
  // Cache values as the kernel sees them (rounded to fp16 for the fp16 cache).
  std::vector<uint16_t> k16(k.size()), v16(v.size());
  if (c.f16) {
    for (size_t i = 0; i < k.size(); ++i) k[i] = fp16_to_fp32(k16[i] = fp32_to_fp16(k[i]));
    for (size_t i = 0; i < v.size(); ++i) v[i] = fp16_to_fp32(v16[i] = fp32_to_fp16(v[i]));
  }
  // K as the cache stores it: tiles of kKeyTile keys, [tile][hd][kKeyTile].
  constexpr int64_t kt_ = kernels::kKeyTile;
  std::vector<float> kt(k.size());
  std::vector<uint16_t> kt16(k.size());
  for (int64_t j = 0; j < ldk; ++j)
    for (int d = 0; d < c.hd; ++d) {
      const size_t at = size_t((j / kt_) * c.hd * kt_ + d * kt_ + j % kt_);
      kt[at] = k[size_t(d * ldk + j)];
      kt16[at] = k16[size_t(d * ldk + j)];
    }
  const float scale = 1.0f / std::sqrt(float(c.hd));
  // The scores rows as tight as the contract allows (n_keys rounded up to a key tile):
  // a kernel writing past them shows under AddressSanitizer (CI).
  const int64_t lds = (c.n_keys + kt_ - 1) / kt_ * kt_;
  std::vector<float> scratch(size_t(c.M * lds), nan), out(size_t(c.M * ldo), nan), stats(size_t(2 * c.M), nan);
  kernels::AttnArgs a{q.data(), ldq, c.M, c.f16 ? (const void*)kt16.data() : (const void*)kt.data(),
                      c.f16 ? (const void*)v16.data() : (const void*)v.data(), ldv, c.n_keys, c.hd, scale,
                      scratch.data(), lds, out.data(), ldo};
  if (seed % 2 == 0) a.stats = stats.data();  // every other case: the rows' max and sum as well
  kernels::active().attend[c.f16 ? 1 : 0](a);

  double vmax = 0.0, err = 0.0;
  for (int64_t j = 0; j < c.n_keys; ++j)
    for (int d = 0; d < c.hd; ++d) vmax = std::max(vmax, std::abs(double(v[size_t(j * ldv + d)])));
  for (int m = 0; m < c.M; ++m) {
    std::vector<double> s(size_t(c.n_keys));
    double mx = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < c.n_keys; ++j) {
      double acc = 0.0;
      for (int d = 0; d < c.hd; ++d) acc += double(q[size_t(m * ldq + d)]) * k[size_t(d * ldk + j)];
      s[size_t(j)] = acc * scale;
      mx = std::max(mx, s[size_t(j)]);
    }
    for (double& x : s) sum += (x = std::exp(x - mx));
    if (a.stats) {  // the max as the kernel's fp32 scores hold it, the sum of ~1-ulp exps
      const double got_max = stats[size_t(2 * m)], got_sum = stats[size_t(2 * m + 1)];
      if (!(std::abs(got_max - mx) <= 2e-5 * (1.0 + std::abs(mx)))) return INFINITY;
      if (!(std::abs(got_sum - sum) <= 1e-4 * sum)) return INFINITY;
    }
    for (int d = 0; d < c.hd; ++d) {
      double ref = 0.0;
      for (int64_t j = 0; j < c.n_keys; ++j) ref += s[size_t(j)] * v[size_t(j * ldv + d)];
      ref /= sum;
      const double got = out[size_t(m * ldo + d)];
      if (!std::isfinite(got)) return INFINITY;
      err = std::max(err, std::abs(got - ref));
    }
    for (int d = c.hd; d < ldo; ++d)  // columns past hd are not written
      if (!std::isnan(out[size_t(m * ldo + d)])) return INFINITY;
  }
  return err / vmax;
}

TEST_CASE("attention kernels match the oracle on random shapes", "[kernels][attention]") {
  IsaGuard guard;
  const int Ms[] = {1, 2, 3, 5, 8, 9, 17};
  const int64_t keys[] = {1, 2, 15, 16, 17, 31, 32, 33, 64, 100, 257};
  const int hds[] = {6, 32, 40, 64, 72, 128};
  for (const auto& name : isas_under_test()) {
    set_isa(name);
    double worst = 0.0;
    uint64_t seed = 1;
    for (bool f16 : {false, true})
      for (int M : Ms)
        for (int64_t n : keys)
          for (int hd : hds) {
            const Case c{M, n, hd, f16, (seed % 5 == 0) ? 8.0f : 1.0f, seed % 3 == 0};
            const double e = run_case(c, seed++);
            INFO(name << " M=" << M << " n_keys=" << n << " hd=" << hd << (f16 ? " fp16" : " fp32") << (c.strided_v ? " ldv>hd" : "")
                 << " err=" << e);
            REQUIRE(e <= 2e-5);
            worst = std::max(worst, e);
          }
    std::printf("attention %-9s worst error / max|V| = %.2e\n", name.c_str(), worst);
  }
}

TEST_CASE("silu_mul kernels match the oracle, tails and extremes", "[kernels][attention]") {
  IsaGuard guard;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> ud(-20.0f, 20.0f);
  for (const auto& name : isas_under_test()) {
    set_isa(name);
    for (int64_t n : {1, 3, 7, 8, 9, 15, 16, 17, 33, 1000}) {
      std::vector<float> g(static_cast<size_t>(n)), u(static_cast<size_t>(n)), out(static_cast<size_t>(n) + 1, -7.0f);
      for (int64_t i = 0; i < n; ++i) {
        g[size_t(i)] = ud(rng);
        u[size_t(i)] = ud(rng);
      }
      const float extremes[] = {-100.0f, 100.0f, -87.5f, 88.5f, 0.0f, -0.0f, 1e-30f};
      for (size_t i = 0; i < std::size(extremes) && i < size_t(n); ++i) g[i] = extremes[i];
      kernels::active().silu_mul(g.data(), u.data(), out.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double x = g[size_t(i)];
        const double ref = x / (1.0 + std::exp(-x)) * u[size_t(i)];
        INFO(name << " n=" << n << " i=" << i << " g=" << x << " got " << out[size_t(i)] << " want " << ref);
        REQUIRE(std::abs(out[size_t(i)] - ref) <= 4e-6 * std::abs(ref) + 1e-30);
      }
      REQUIRE(out[size_t(n)] == -7.0f);  // nothing written past n
    }
  }
}

}  // namespace

TEST_CASE("pack_keys: every ISA writes the tiled key layout exactly, padding zero", "[kernels][attention]") {
  std::mt19937 rng(4242);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto& name : isas_under_test()) {
    IsaGuard guard;
    set_isa(name);
    const auto fn = kernels::active().pack_keys;
    REQUIRE(fn != nullptr);
    for (int64_t n : {1, 2, 15, 16, 17, 31, 32, 33, 48, 100}) {
      for (int hd : {6, 16, 32, 40, 64, 72}) {
        const int64_t ldk = hd + 3 * (n % 3);  // rows at a stride wider than hd too
        std::vector<float> k(size_t(n * ldk));
        for (float& v : k) v = nd(rng);
        const int64_t padded = (n + kernels::kKeyTile - 1) / kernels::kKeyTile * kernels::kKeyTile;
        std::vector<float> tiles(size_t(padded * hd), std::numeric_limits<float>::quiet_NaN());
        fn(k.data(), ldk, n, hd, tiles.data());
        INFO(name << " n=" << n << " hd=" << hd << " ldk=" << ldk);
        for (int64_t j = 0; j < padded; ++j)
          for (int d = 0; d < hd; ++d) {
            const float got = tiles[size_t((j / kernels::kKeyTile) * hd * kernels::kKeyTile + d * kernels::kKeyTile +
                                           j % kernels::kKeyTile)];
            INFO("key " << j << " dim " << d);
            REQUIRE(got == (j < n ? k[size_t(j * ldk + d)] : 0.0f));
            REQUIRE(!std::signbit(got) == !std::signbit(j < n ? k[size_t(j * ldk + d)] : 0.0f));
          }
      }
    }
  }
}

}  // namespace halfbyte::test
