// Float weights (f32, f16, bf16) against fp32 activations with fp32 FMAs
// (KernelTable::gemm_dense): avx512's replacement for ops::matmul's Eigen product,
// which the library compiles for baseline x86-64 (SSE2). Dot products along K: a
// tile of MR activation rows x NR weight rows (MR NR = 16 accumulators, each 16
// partial sums over k) reduced by reduce16; K in chunks of kChunk so that a row
// group's chunk of weights (16 rows) and a tile's activations stay in L1 while the
// activation rows of a block pass, partial results added into y. f16 and bf16
// weights are widened in registers (exactly).
#include <immintrin.h>

#include <cstdint>

#include "avx512/simd_common.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::avx512 {
namespace {

constexpr int64_t kChunk = 512;   // k per pass: 16 weight rows x 2 KB (f32) + 4 activation rows x 2 KB
constexpr int64_t kMBlock = 64;   // activation rows per pass over a row group

#include "dense16.inl"

// y[m + i][n + j] = (first ? 0 : y) + sum_{k0 <= k < k1} x[m + i][k] w[n + j][k] for i < MR,
// j < min(NR, nvalid) (NR = 16 / MR); weight rows past nvalid repeat the last valid one
// (computed, not stored).
template <int T, int MR>
void tile(const Dense& w, const ActF32& x, int64_t m, int64_t n, int nvalid, int64_t k0, int64_t k1, float* y,
          int64_t ldy, bool first) {
  constexpr int NR = 16 / MR;
  constexpr size_t kElem = T == kDenseF32 ? 4 : 2;
  const uint8_t* wr[NR];
  const float* xr[MR];
  for (int j = 0; j < NR; ++j)
    wr[j] = static_cast<const uint8_t*>(w.data) + size_t((n + (j < nvalid ? j : nvalid - 1)) * w.ld) * kElem;
  for (int i = 0; i < MR; ++i) xr[i] = x.x + (m + i) * x.ldx;
  __m512 acc[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t k = k0; k < k1; k += 16) {  // (masked loads cost what plain ones do)
    const __mmask16 mask = k1 - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k1 - k)) - 1u);
    __m512 wv[NR];
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) wv[j] = dense16<T>(wr[j], k, mask);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, xr[i] + k);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i * NR + j] = _mm512_fmadd_ps(xv, wv[j], acc[i * NR + j]);
    }
  }
  // (A copy: with acc itself passed by reference, GCC keeps it in memory through the loop.)
  __m512 sums[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) sums[i] = acc[i];
  const __m512 s = reduce16(sums, [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); });  // lane i NR + j
  const __mmask16 valid = __mmask16((1u << (nvalid < NR ? nvalid : NR)) - 1u);
  for (int i = 0; i < MR; ++i) {
    float* yr = y + (m + i) * ldy + n;
    __m512 v = _mm512_maskz_compress_ps(__mmask16(((1u << NR) - 1u) << (i * NR)), s);
    if (!first) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(valid, yr));
    _mm512_mask_storeu_ps(yr, valid, v);
  }
}

constexpr int kAcc = 16;
#include "gemm_dense_driver.inl"

}  // namespace

void fill_dense(KernelTable& t) {
  t.gemm_dense[kDenseF32] = gemm_dense<kDenseF32>;
  t.gemm_dense[kDenseF16] = gemm_dense<kDenseF16>;
  t.gemm_dense[kDenseBF16] = gemm_dense<kDenseBF16>;
}

}  // namespace halfbyte::kernels::avx512
