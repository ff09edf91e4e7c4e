// Attention and SwiGLU activation with AVX2 + FMA + F16C: the AVX-512 scheme
// (kernels/avx512/attention.cpp) with 8 lanes. Contract: kernel_table.hpp.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>

#include "avx2/simd_common.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::avx2 {
namespace {

// Internal linkage throughout; no inline function of a shared header is called.

// exp(x), x clamped to [-87, 88]: 2^n * p(r) as in the AVX-512 file, with 2^n
// built in the exponent field (n + 127 is in [1, 254] after the clamp).
inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return _cvtsh_ss(*p); }

template <class T, int MR>
void scores(const AttnArgs& a, int m0) {
  const T* kt = static_cast<const T*>(a.kt);
  const __m256 scale = _mm256_set1_ps(a.scale);
  for (int64_t j = 0; j < a.n_keys; j += 16) {
    __m256 acc[MR][2];
    for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    const T* kp = kt + (j / kKeyTile) * a.hd * kKeyTile + j % kKeyTile;
    for (int d = 0; d < a.hd; ++d, kp += kKeyTile) {
      const __m256 k0 = load8(kp), k1 = load8(kp + 8);  // a tile's padding is readable
      for (int m = 0; m < MR; ++m) {
        const __m256 qb = _mm256_broadcast_ss(a.q + (m0 + m) * a.ldq + d);
        acc[m][0] = _mm256_fmadd_ps(qb, k0, acc[m][0]);
        acc[m][1] = _mm256_fmadd_ps(qb, k1, acc[m][1]);
      }
    }
    for (int m = 0; m < MR; ++m) {
      float* s = a.scratch + (m0 + m) * a.lds + j;
      _mm256_storeu_ps(s, _mm256_mul_ps(acc[m][0], scale));
      _mm256_storeu_ps(s + 8, _mm256_mul_ps(acc[m][1], scale));
    }
  }
}

// The largest of s[0..n).
float row_max(const float* s, int64_t n) {
  const int64_t full = n / 8 * 8;
  __m256 mx = _mm256_set1_ps(-INFINITY);
  for (int64_t j = 0; j < full; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j));
  float m = hmax(mx);
  for (int64_t j = full; j < n; ++j) m = std::max(m, s[j]);
  return m;
}

// exp(s - max) in place over n values (the scores row is padded to a multiple of
// 16, so whole vectors are read; values past n are set to zero). Returns the sum.
float softmax_row(float* s, int64_t n) {
  const float m = row_max(s, n);
  for (int64_t j = n; j < (n + 7) / 8 * 8; ++j) s[j] = -INFINITY;  // the tail vector's padding (none when 8 | n)
  const __m256 mv = _mm256_set1_ps(m);
  __m256 sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; j += 8) {
    __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
    if (j + 8 > n) {  // zero the padding (exp of the clamped -inf is tiny, not 0)
      alignas(32) int32_t keep[8];
      for (int i = 0; i < 8; ++i) keep[i] = j + i < n ? -1 : 0;
      e = _mm256_and_ps(e, _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(keep))));
    }
    _mm256_storeu_ps(s + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  return hsum(sum);
}

template <class T, int MR, int NV>
void pv(const AttnArgs& a, int m0, int d0, const float* inv) {
  const T* v = static_cast<const T*>(a.v) + d0;
  __m256 acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < NV; ++i) acc[m][i] = _mm256_setzero_ps();
  for (int64_t j = 0; j < a.n_keys; ++j, v += a.ldv) {
    __m256 vv[NV];
    for (int i = 0; i < NV; ++i) vv[i] = load8(v + 8 * i);
    for (int m = 0; m < MR; ++m) {
      const __m256 p = _mm256_broadcast_ss(a.scratch + (m0 + m) * a.lds + j);
      for (int i = 0; i < NV; ++i) acc[m][i] = _mm256_fmadd_ps(p, vv[i], acc[m][i]);
    }
  }
  for (int m = 0; m < MR; ++m) {
    float* out = a.out + (m0 + m) * a.ldo + d0;
    const __m256 s = _mm256_set1_ps(inv[m0 + m]);
    for (int i = 0; i < NV; ++i) _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(acc[m][i], s));
  }
}

// Columns past the last whole vector of 8 (hd not a multiple of 8).
template <class T>
void pv_tail(const AttnArgs& a, int m, int d0, float inv) {
  const T* v = static_cast<const T*>(a.v);
  float* out = a.out + m * a.ldo;
  const float* p = a.scratch + m * a.lds;
  for (int d = d0; d < a.hd; ++d) {
    float acc = 0.0f;
    for (int64_t j = 0; j < a.n_keys; ++j) acc += p[j] * load1(v + j * a.ldv + d);
    out[d] = acc * inv;
  }
}

template <class T, int MR>
void pv_rows(const AttnArgs& a, int m0, const float* inv) {
  const int full = a.hd / 8 * 8;
  for (int d0 = 0; d0 < full; d0 += 16) {
    if (full - d0 >= 16) pv<T, MR, 2>(a, m0, d0, inv);
    else pv<T, MR, 1>(a, m0, d0, inv);
  }
  if (full < a.hd)
    for (int m = 0; m < MR; ++m) pv_tail<T>(a, m0 + m, full, inv[m0 + m]);
}

constexpr int kScoreRows = 6;
void softmax_rows(float* s, int64_t lds, int64_t n, int rows, float* inv) {
  for (int r = 0; r < rows; ++r) inv[r] = 1.0f / softmax_row(s + r * lds, n);
}

#include "attention_driver.inl"

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
  }
  if (i < n) {
    float gx[8] = {}, ux[8] = {}, o[8];
    std::memcpy(gx, g + i, size_t(n - i) * 4);
    std::memcpy(ux, u + i, size_t(n - i) * 4);
    silu_mul(gx, ux, o, 8);
    std::memcpy(out + i, o, size_t(n - i) * 4);
  }
}

}  // namespace

void fill_attention(KernelTable& t) {
  t.attend[0] = attend<float>;
  t.attend[1] = attend<uint16_t>;
  t.attend_block[0] = attend_block<float>;
  t.attend_block[1] = attend_block<uint16_t>;
  t.silu_mul = silu_mul;
}

}  // namespace halfbyte::kernels::avx2
