// Encoder elementwise operations, scalar: the reference (kernel_table.hpp).
#include <cmath>

#include "kernel_table.hpp"

namespace halfbyte::kernels::scalar {
namespace {

// erf(x) as a rational function of x on [-4, 4] (odd numerator of degree 13, even
// denominator of degree 8; outside, erf is +-1 in fp32), within a few ulp of
// std::erf: the approximation Eigen and XLA use for fp32.
inline float erf_rational(float x) {
  x = std::fmin(std::fmax(x, -4.0f), 4.0f);
  const float x2 = x * x;
  float p = std::fma(x2, -2.72614225801306e-10f, 2.77068142495902e-08f);
  p = std::fma(x2, p, -2.10102402082508e-06f);
  p = std::fma(x2, p, -5.69250639462346e-05f);
  p = std::fma(x2, p, -7.34990630326855e-04f);
  p = std::fma(x2, p, -2.95459980854025e-03f);
  p = std::fma(x2, p, -1.60960333262415e-02f);
  p *= x;
  float q = std::fma(x2, -1.45660718464996e-05f, -2.13374055278905e-04f);
  q = std::fma(x2, q, -1.68282697438203e-03f);
  q = std::fma(x2, q, -7.37332916720468e-03f);
  q = std::fma(x2, q, -1.42647390514189e-02f);
  return p / q;
}

void gelu(float* x, const float* bias, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = bias ? x[i] + bias[i] : x[i];
    x[i] = 0.5f * v * (1.0f + erf_rational(v * 0.70710678118654752f));
  }
}

void add_layer_norm(float* x, const float* a, const float* bias, int64_t n, const float* w, const float* b,
                    float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (a) x[i] += a[i];
    if (bias) x[i] += bias[i];
    sum += x[i];
  }
  const double mean = sum / double(n);
  double sq = 0.0;
  for (int64_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const float inv = float(1.0 / std::sqrt(sq / double(n) + double(eps)));
  const float m = float(mean);
  for (int64_t i = 0; i < n; ++i) x[i] = (x[i] - m) * inv * w[i] + b[i];
}

}  // namespace

void fill_elementwise(KernelTable& t) {
  t.gelu = gelu;
  t.add_layer_norm = add_layer_norm;
}

}  // namespace halfbyte::kernels::scalar
