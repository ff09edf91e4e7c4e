// The encoder's elementwise kernels (GELU with bias, residual add + LayerNorm) of
// every ISA this CPU runs, against double-precision oracles on random rows (lengths
// with and without vector tails, large and tiny values, null optional inputs).
//
// Bounds: gelu: |got - want| <= 2e-6 * (1 + |v|) (the rational erf is within ~1e-7
// of erf on [-4, 4] and erf(|x| > 4) = 1 in fp32; fp32 rounding of v/2 (1 + erf)).
// LayerNorm: |got - want| <= 2e-5 * (|w| (|normalized| + 1) + |b|) (fp32 sums of up
// to 1537 terms; the scalar reference sums in double).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "kernel_table.hpp"
#include "kernels/kernel_test_util.hpp"

namespace halfbyte::test {
namespace {

double gelu_oracle(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

TEST_CASE("elementwise: gelu with bias, every ISA, against erf in double", "[elementwise]") {
  IsaGuard guard;
  std::mt19937_64 rng(7);
  for (const auto& isa_name : isas_under_test()) {
    set_isa(isa_name);
    for (int64_t n : {1, 15, 16, 17, 100, 384, 1536, 1537}) {
      for (float spread : {0.01f, 1.0f, 4.0f, 30.0f}) {
        std::normal_distribution<float> nd(0.0f, spread);
        std::vector<float> x(static_cast<size_t>(n)), bias(static_cast<size_t>(n));
        for (float& v : x) v = nd(rng);
        for (float& v : bias) v = nd(rng) * 0.5f;
        for (bool with_bias : {false, true}) {
          std::vector<float> y = x;
          kernels::active().gelu(y.data(), with_bias ? bias.data() : nullptr, n);
          for (int64_t i = 0; i < n; ++i) {
            const double v = double(x[size_t(i)]) + (with_bias ? double(bias[size_t(i)]) : 0.0);
            const float vf = with_bias ? x[size_t(i)] + bias[size_t(i)] : x[size_t(i)];  // the kernel's input
            INFO(isa_name << " n=" << n << " i=" << i << " v=" << v);
            REQUIRE(std::fabs(double(y[size_t(i)]) - gelu_oracle(double(vf))) <= 2e-6 * (1.0 + std::fabs(v)));
          }
        }
      }
    }
  }
}

TEST_CASE("elementwise: residual add + LayerNorm, every ISA, against double", "[elementwise]") {
  IsaGuard guard;
  std::mt19937_64 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto& isa_name : isas_under_test()) {
    set_isa(isa_name);
    for (int64_t n : {1, 7, 16, 33, 384, 768, 1537}) {
      for (float offset : {0.0f, 50.0f}) {  // a large mean: cancellation in the variance
        const size_t un = static_cast<size_t>(n);
        std::vector<float> x(un), a(un), bias(un), w(un), b(un);
        for (int64_t i = 0; i < n; ++i) {
          x[size_t(i)] = nd(rng) * 3.0f + offset;
          a[size_t(i)] = nd(rng);
          bias[size_t(i)] = nd(rng) * 0.1f;
          w[size_t(i)] = nd(rng);
          b[size_t(i)] = nd(rng);
        }
        x[0] *= 20.0f;  // an outlier channel
        for (int with : {0, 1, 2}) {  // nothing added, a only, a and bias
          const float* pa = with >= 1 ? a.data() : nullptr;
          const float* pb = with >= 2 ? bias.data() : nullptr;
          std::vector<double> s(static_cast<size_t>(n));
          double mean = 0.0, var = 0.0;
          for (int64_t i = 0; i < n; ++i) {
            float v = x[size_t(i)];  // fp32 sums, as the kernels form them
            if (pa) v += pa[i];
            if (pb) v += pb[i];
            s[size_t(i)] = v;
            mean += v;
          }
          mean /= double(n);
          for (double v : s) var += (v - mean) * (v - mean);
          const double inv = 1.0 / std::sqrt(var / double(n) + 1e-12);
          std::vector<float> y = x;
          kernels::active().add_layer_norm(y.data(), pa, pb, n, w.data(), b.data(), 1e-12f);
          for (int64_t i = 0; i < n; ++i) {
            const double norm = (s[size_t(i)] - mean) * inv;
            const double want = norm * w[size_t(i)] + b[size_t(i)];
            INFO(isa_name << " n=" << n << " offset=" << offset << " with=" << with << " i=" << i);
            REQUIRE(std::fabs(y[size_t(i)] - want) <=
                    2e-5 * (std::fabs(w[size_t(i)]) * (std::fabs(norm) + 1.0) + std::fabs(b[size_t(i)])));
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace halfbyte::test
