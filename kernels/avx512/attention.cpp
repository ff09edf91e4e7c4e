// Attention and SwiGLU activation with AVX-512 (F/BW/VL/DQ). Scores are a small
// GEMM with 16 keys per zmm lane set (K cache transposed), softmax uses a vector
// exp, and P.V runs with head dimensions along the lanes. Contract and bounds:
// kernel_table.hpp and tests/kernels/test_attention.cpp.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <new>

#include "kernel_table.hpp"
#include "simd_common.hpp"

namespace halfbyte::kernels::avx512 {
namespace {

// Internal linkage throughout, and no inline function of a shared header is
// called here (see kernels/CMakeLists.txt).

#include "exp_ps512.inl"

inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 load16(const float* p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
inline __m512 load16(const uint16_t* p, __mmask16 k) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p)); }

inline __mmask16 first(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

// scratch[m][j .. j + 16 NK) = scale * q[m] . k_j for MR rows from m0, NK zmm of keys.
template <class T, int MR, int NK>
inline void score_tile(const AttnArgs& a, int m0, int64_t j) {
  const T* kp = static_cast<const T*>(a.kt) + (j / kKeyTile) * a.hd * kKeyTile + j % kKeyTile;
  __m512 acc[MR][NK];
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < NK; ++i) acc[m][i] = _mm512_setzero_ps();
  for (int d = 0; d < a.hd; ++d, kp += kKeyTile) {
    __m512 k[NK];
    for (int i = 0; i < NK; ++i) k[i] = load16(kp + 16 * i);  // a tile's padding is readable
    for (int m = 0; m < MR; ++m) {
      const __m512 qb = _mm512_set1_ps(a.q[(m0 + m) * a.ldq + d]);
      for (int i = 0; i < NK; ++i) acc[m][i] = _mm512_fmadd_ps(qb, k[i], acc[m][i]);
    }
  }
  const __m512 scale = _mm512_set1_ps(a.scale);
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < NK; ++i) _mm512_storeu_ps(a.scratch + (m0 + m) * a.lds + j + 16 * i, _mm512_mul_ps(acc[m][i], scale));
}

// scratch[m][j] = scale * q[m] . k_j for MR rows from m0: keys 32 at a time, the
// last 16 alone where no more are left (a 35-token text: 48 keys' work, not 64).
template <class T, int MR>
void scores(const AttnArgs& a, int m0) {
  for (int64_t j = 0; j < a.n_keys; j += 32) {
    if (a.n_keys - j > 16)
      score_tile<T, MR, 2>(a, m0, j);
    else
      score_tile<T, MR, 1>(a, m0, j);
  }
}

// Horizontal sum / max by folding lanes (GCC 12's _mm512_reduce_* warn spuriously).
template <class Op>
inline float fold(__m512 v, Op op) {
  v = op(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = op(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  v = op(v, _mm512_permute_ps(v, 0x4E));
  v = op(v, _mm512_permute_ps(v, 0xB1));
  return _mm512_cvtss_f32(v);
}
inline float hsum(__m512 v) { return fold(v, [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); }); }
inline float hmax(__m512 v) { return fold(v, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); }); }

// The largest of s[0..n).
float row_max(const float* s, int64_t n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n; j += 16) mx = _mm512_mask_max_ps(mx, first(n - j), mx, _mm512_loadu_ps(s + j));
  return hmax(mx);
}

// Row s becomes exp(s - max) (zero past n); returns the sum.
float softmax_row(float* s, int64_t n) {
  const __m512 m = _mm512_set1_ps(row_max(s, n));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __m512 e = _mm512_maskz_mov_ps(first(n - j), exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + j), m)));
    _mm512_storeu_ps(s + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  return hsum(sum);
}

// Rows [0, rows) of s (a stride of lds) become exp(s - the row's max), zero past n;
// inv[r] = 1 / the row's sum. 16 rows at a time, whose maxima and sums are reduced
// together (reduce16): one row's horizontal steps and division no longer wait on the
// last row's (they were a quarter of a MiniLM head's attention).
// (Fewer than 4 rows, as a decoding token's heads: each row on its own, lanes
// folded: cheaper than the 16-row trees.)
void softmax_rows(float* s, int64_t lds, int64_t n, int rows, float* inv) {
  for (int r0 = 0; r0 < rows; r0 += 16) {
    const int nr = std::min(16, rows - r0);
    if (nr < 4) {
      for (int r = r0; r < rows; ++r) inv[r] = 1.0f / softmax_row(s + r * lds, n);
      return;
    }
    __m512 v[16];
    for (int r = 0; r < 16; ++r) {
      __m512 mx = _mm512_set1_ps(-INFINITY);
      if (r < nr)
        for (int64_t j = 0; j < n; j += 16) {
          mx = _mm512_mask_max_ps(mx, first(n - j), mx, _mm512_loadu_ps(s + (r0 + r) * lds + j));
        }
      v[r] = mx;
    }
    const __m512 m16 = reduce16(v, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
    for (int r = 0; r < 16; ++r) {
      __m512 sum = _mm512_setzero_ps();
      if (r < nr) {
        float* row = s + (r0 + r) * lds;
        const __m512 m = _mm512_permutexvar_ps(_mm512_set1_epi32(r), m16);
        for (int64_t j = 0; j < n; j += 16) {
          const __m512 e = _mm512_maskz_mov_ps(first(n - j), exp_ps(_mm512_sub_ps(_mm512_loadu_ps(row + j), m)));
          _mm512_storeu_ps(row + j, e);
          sum = _mm512_add_ps(sum, e);
        }
      }
      v[r] = sum;
    }
    const __m512 sums = reduce16(v, [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); });
    _mm512_mask_storeu_ps(inv + r0, first(nr), _mm512_div_ps(_mm512_set1_ps(1.0f), sums));
  }
}

// out[m][d0 .. d0 + 16 NV) = sum_j p[m][j] v[j][...] / sums[m], MR rows from m0.
template <class T, int MR, int NV>
void pv(const AttnArgs& a, int m0, int d0, const float* inv) {
  const T* v = static_cast<const T*>(a.v) + d0;
  __mmask16 mask[NV];
  for (int i = 0; i < NV; ++i) mask[i] = first(a.hd - d0 - 16 * i);
  __m512 acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < NV; ++i) acc[m][i] = _mm512_setzero_ps();
  for (int64_t j = 0; j < a.n_keys; ++j, v += a.ldv) {
    __m512 vv[NV];
    for (int i = 0; i < NV; ++i) vv[i] = load16(v + 16 * i, mask[i]);
    for (int m = 0; m < MR; ++m) {
      const __m512 p = _mm512_set1_ps(a.scratch[(m0 + m) * a.lds + j]);
      for (int i = 0; i < NV; ++i) acc[m][i] = _mm512_fmadd_ps(p, vv[i], acc[m][i]);
    }
  }
  for (int m = 0; m < MR; ++m) {
    float* out = a.out + (m0 + m) * a.ldo + d0;
    const __m512 s = _mm512_set1_ps(inv[m0 + m]);
    for (int i = 0; i < NV; ++i) _mm512_mask_storeu_ps(out + 16 * i, mask[i], _mm512_mul_ps(acc[m][i], s));
  }
}

template <class T, int MR>
void pv_rows(const AttnArgs& a, int m0, const float* inv) {
  for (int d0 = 0; d0 < a.hd; d0 += 64) {
    switch (std::min(4, (a.hd - d0 + 15) / 16)) {
      case 1: pv<T, MR, 1>(a, m0, d0, inv); break;
      case 2: pv<T, MR, 2>(a, m0, d0, inv); break;
      case 3: pv<T, MR, 3>(a, m0, d0, inv); break;
      default: pv<T, MR, 4>(a, m0, d0, inv); break;
    }
  }
}

constexpr int kScoreRows = 8;
#include "attention_driver.inl"

#include "transpose16.inl"

// 16 keys at a time, 16 dims at a time: rows in (masked past n and hd), transposed,
// each dim's 16 keys stored as one vector.
void pack_keys(const float* k, int64_t ldk, int64_t n, int hd, float* tiles) {
  const int64_t padded = (n + kKeyTile - 1) / kKeyTile * kKeyTile;
  for (int64_t j = 0; j < padded; j += 16) {
    float* dst = tiles + (j / kKeyTile) * hd * kKeyTile + j % kKeyTile;
    const int64_t keys = std::max<int64_t>(0, std::min<int64_t>(16, n - j));
    for (int d0 = 0; d0 < hd; d0 += 16) {
      const __mmask16 dims = first(hd - d0);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < keys ? _mm512_maskz_loadu_ps(dims, k + (j + i) * ldk + d0) : _mm512_setzero_ps();
      transpose16(r);
      for (int c = 0; c < 16 && d0 + c < hd; ++c) _mm512_storeu_ps(dst + (d0 + c) * kKeyTile, r[c]);
    }
  }
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = first(n - i);
    const __m512 x = _mm512_maskz_loadu_ps(k, g + i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x));
    const __m512 y = _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(k, u + i));
    _mm512_mask_storeu_ps(out + i, k, y);
  }
}

}  // namespace

void fill_attention(KernelTable& t) {
  t.attend[0] = attend<float>;
  t.attend[1] = attend<uint16_t>;
  t.attend_block[0] = attend_block<float>;
  t.attend_block[1] = attend_block<uint16_t>;
  t.pack_keys = pack_keys;
  t.silu_mul = silu_mul;
}

}  // namespace halfbyte::kernels::avx512
