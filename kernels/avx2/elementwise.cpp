// Encoder elementwise operations, AVX2 + FMA: GELU with the scalar reference's
// rational erf, 8 lanes at a time; LayerNorm with fp32 lane sums (the reference sums
// in double: results within the bound tests/kernels/test_elementwise.cpp states).
// Without them an AVX2 CPU ran the scalar GELU, a libm fmaf call per coefficient:
// about a fifth of a MiniLM batch's time on a Zen 3.
#include <immintrin.h>

#include <cmath>

#include "avx2/simd_common.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::avx2 {
namespace {

inline __m256 erf_rational8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0f)), _mm256_set1_ps(4.0f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.72614225801306e-10f), _mm256_set1_ps(2.77068142495902e-08f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.10102402082508e-06f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-5.69250639462346e-05f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-7.34990630326855e-04f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.95459980854025e-03f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-1.60960333262415e-02f));
  p = _mm256_mul_ps(x, p);
  __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(-1.45660718464996e-05f), _mm256_set1_ps(-2.13374055278905e-04f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.68282697438203e-03f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-7.37332916720468e-03f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.42647390514189e-02f));
  return _mm256_div_ps(p, q);
}

// Lanes i < left of the last vector: all-ones, the rest zero (masked loads read and
// store nothing there, so no byte past n is touched).
inline __m256i tail_mask8(int64_t left) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(left < 8 ? left : 8)), idx);
}

inline __m256 load_n(const float* p, int64_t left, __m256i k) {
  return left >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, k);
}

inline void store_n(float* p, int64_t left, __m256i k, __m256 v) {
  if (left >= 8) _mm256_storeu_ps(p, v);
  else _mm256_maskstore_ps(p, k, v);
}

void gelu(float* x, const float* bias, int64_t n) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), rsqrt2 = _mm256_set1_ps(0.70710678118654752f);
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t left = n - i;
    const __m256i k = tail_mask8(left);
    __m256 v = load_n(x + i, left, k);
    if (bias) v = _mm256_add_ps(v, load_n(bias + i, left, k));
    const __m256 e = erf_rational8(_mm256_mul_ps(v, rsqrt2));
    store_n(x + i, left, k, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
  }
}

void add_layer_norm(float* x, const float* a, const float* bias, int64_t n, const float* w, const float* b,
                    float eps) {
  __m256 sum = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t left = n - i;
    const __m256i k = tail_mask8(left);
    __m256 v = load_n(x + i, left, k);  // masked lanes read as 0
    if (a) v = _mm256_add_ps(v, load_n(a + i, left, k));
    if (bias) v = _mm256_add_ps(v, load_n(bias + i, left, k));
    store_n(x + i, left, k, v);
    sum = _mm256_add_ps(sum, v);
  }
  const float mean = hsum(sum) / float(n);
  const __m256 vm = _mm256_set1_ps(mean);
  __m256 sq = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t left = n - i;
    const __m256i k = tail_mask8(left);
    const __m256 d = _mm256_and_ps(_mm256_sub_ps(load_n(x + i, left, k), vm), _mm256_castsi256_ps(k));
    sq = _mm256_fmadd_ps(d, d, sq);
  }
  const float inv = 1.0f / std::sqrt(hsum(sq) / float(n) + eps);
  const __m256 vi = _mm256_set1_ps(inv);
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t left = n - i;
    const __m256i k = tail_mask8(left);
    const __m256 d = _mm256_mul_ps(_mm256_sub_ps(load_n(x + i, left, k), vm), vi);
    store_n(x + i, left, k, _mm256_fmadd_ps(d, load_n(w + i, left, k), load_n(b + i, left, k)));
  }
}

}  // namespace

void fill_elementwise(KernelTable& t) {
  t.gelu = gelu;
  t.add_layer_norm = add_layer_norm;
}

}  // namespace halfbyte::kernels::avx2
