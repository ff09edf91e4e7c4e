// Encoder elementwise operations, AVX-512: GELU with the scalar reference's
// rational erf, 16 lanes at a time; LayerNorm with fp32 lane sums (the reference
// sums in double: results within the bound tests/kernels/test_elementwise.cpp states).
#include <immintrin.h>

#include <cmath>

#include "kernel_table.hpp"
#include "simd_common.hpp"

namespace halfbyte::kernels::avx512 {
namespace {

void gelu(float* x, const float* bias, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = first_lanes(n - i);
    __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + i));
    _mm512_mask_storeu_ps(x + i, k, gelu_ps(v));
  }
}

void add_layer_norm(float* x, const float* a, const float* bias, int64_t n, const float* w, const float* b,
                    float eps) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = first_lanes(n - i);
    __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    if (a) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, a + i));
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + i));
    _mm512_mask_storeu_ps(x + i, k, v);
    sum = _mm512_add_ps(sum, v);
  }
  const float mean = _mm512_reduce_add_ps(sum) / float(n);
  const __m512 vm = _mm512_set1_ps(mean);
  __m512 sq = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = first_lanes(n - i);
    const __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), vm);
    sq = _mm512_fmadd_ps(d, d, sq);
  }
  const float inv = 1.0f / std::sqrt(_mm512_reduce_add_ps(sq) / float(n) + eps);
  const __m512 vi = _mm512_set1_ps(inv);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = first_lanes(n - i);
    const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vi);
    _mm512_mask_storeu_ps(x + i, k,
                          _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(k, w + i), _mm512_maskz_loadu_ps(k, b + i)));
  }
}

}  // namespace

void fill_elementwise(KernelTable& t) {
  t.gelu = gelu;
  t.add_layer_norm = add_layer_norm;
}

}  // namespace halfbyte::kernels::avx512
