// Float weights (f32, f16, bf16) against fp32 activations with fp32 FMAs
// (KernelTable::gemm_dense), avx2's counterpart of kernels/avx512/gemm_dense.cpp:
// dot products along K in tiles of MR activation rows x NR weight rows (MR NR = 8
// accumulators of 8 partial sums, reduced 8 at a time), K in chunks of kChunk,
// partial results added into y. f16 weights widened by F16C, bf16 by a shift (exact).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernel_table.hpp"

namespace halfbyte::kernels::avx2 {
namespace {

constexpr int64_t kChunk = 512;
constexpr int64_t kMBlock = 64;

template <int T>
inline __m256 wload(const uint8_t* row, int64_t k) {
  if constexpr (T == kDenseF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + k));
    if constexpr (T == kDenseF16) return _mm256_cvtph_ps(h);
    else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// Lane j: the sum of v[j]'s 8 lanes.
inline __m256 reduce8(const __m256 (&v)[8]) {
  const __m256 t0 = _mm256_hadd_ps(v[0], v[1]), t1 = _mm256_hadd_ps(v[2], v[3]);
  const __m256 t2 = _mm256_hadd_ps(v[4], v[5]), t3 = _mm256_hadd_ps(v[6], v[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);  // halves: v0..v3 lo | hi
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// y[m + i][n + j] = (first ? 0 : y) + sum_{k0 <= k < k1} x[m + i][k] w[n + j][k] for i < MR,
// j < min(NR, nvalid) (NR = 8 / MR); weight rows past nvalid repeat the last valid one.
template <int T, int MR>
void tile(const Dense& w, const ActF32& x, int64_t m, int64_t n, int nvalid, int64_t k0, int64_t k1, float* y,
          int64_t ldy, bool first) {
  constexpr int NR = 8 / MR;
  constexpr size_t kElem = T == kDenseF32 ? 4 : 2;
  const uint8_t* wr[NR];
  const float* xr[MR];
  for (int j = 0; j < NR; ++j)
    wr[j] = static_cast<const uint8_t*>(w.data) + size_t((n + (j < nvalid ? j : nvalid - 1)) * w.ld) * kElem;
  for (int i = 0; i < MR; ++i) xr[i] = x.x + (m + i) * x.ldx;
  __m256 acc[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
  int64_t k = k0;
  for (; k + 8 <= k1; k += 8) {
    __m256 wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = wload<T>(wr[j], k);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(xr[i] + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i * NR + j] = _mm256_fmadd_ps(xv, wv[j], acc[i * NR + j]);
    }
  }
  if (k < k1) {  // the last k < 8: through zero-padded copies (AVX2 has no 16-bit masked loads)
    const int rest = int(k1 - k);
    alignas(32) uint8_t wt[NR][32] = {};
    alignas(32) float xt[MR][8] = {};
    for (int j = 0; j < NR; ++j) std::memcpy(wt[j], wr[j] + size_t(k) * kElem, size_t(rest) * kElem);
    for (int i = 0; i < MR; ++i) std::memcpy(xt[i], xr[i] + k, size_t(rest) * sizeof(float));
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_load_ps(xt[i]);
      for (int j = 0; j < NR; ++j) acc[i * NR + j] = _mm256_fmadd_ps(xv, wload<T>(wt[j], 0), acc[i * NR + j]);
    }
  }
  __m256 sums[8];  // (a copy: acc passed by reference would stay in memory through the loop)
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) sums[i] = acc[i];
  alignas(32) float s[8];  // lane i NR + j
  _mm256_store_ps(s, reduce8(sums));
  const int valid = nvalid < NR ? nvalid : NR;
  for (int i = 0; i < MR; ++i) {
    float* yr = y + (m + i) * ldy + n;
    for (int j = 0; j < valid; ++j) yr[j] = first ? s[i * NR + j] : yr[j] + s[i * NR + j];
  }
}

constexpr int kAcc = 8;
#include "gemm_dense_driver.inl"

}  // namespace

void fill_dense(KernelTable& t) {
  t.gemm_dense[kDenseF32] = gemm_dense<kDenseF32>;
  t.gemm_dense[kDenseF16] = gemm_dense<kDenseF16>;
  t.gemm_dense[kDenseBF16] = gemm_dense<kDenseBF16>;
}

}  // namespace halfbyte::kernels::avx2
