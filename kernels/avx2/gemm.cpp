// AVX2 + FMA + F16C kernels (no VNNI). Same results as kernels/scalar, bit for bit
// on the integer path (see the contract in kernel_table.hpp).
//
// Layout use: a 64-byte chunk of the packed matrix is "16 rows x 4 consecutive k";
// it is taken as two ymm halves of 8 rows each, so a 32-bit lane is one row and
// holds 4 k. Activations are broadcast 4 bytes at a time (the same 4 k for every
// lane), so the dot products need no horizontal sums.
//
// Integer path. 4-bit: maddubs(nibbles 0..15, int8 |q| <= 127) gives int16 pairs
// of at most 2 * 15 * 127 = 3810; the 8 products of a 32-k block (4 chunks x low
// and high nibbles) are summed in int16 (<= 30480, no saturation), then one madd
// with ones widens to int32: the exact block sum. q8: maddubs(|w|, sign(q, w))
// (|w| <= 128, |q| <= 127: pairs <= 32512, exact), widened to int32 per chunk.
// Then per block and lane, in the scalar order: isum -= 8 s (sym), acc =
// fma(float(isum), dw * d, acc), acc = fma(mw, ds, acc) (affine).
//
// Float path: per block and lane, t = fma chain over k = 0..31 in order, starting
// from +0, then acc = fma(t, dw, acc) (+ fma(mw, xsum, acc)): the scalar order, so
// the float path also matches the scalar kernels (not required by the contract).
//
// Blocking: MR = 4 activation rows per pass (3, 2, 1 for the remainder) reuse each
// unpacked weight vector; row groups are taken a panel at a time (~192 KB, kept in
// L2) while all rows of x pass over the panel. M = 1 (GEMV) is the MR = 1 case:
// one linear pass over each thread's row groups. No software prefetch: on Zen 4,
// prefetching 0.5-16 KB ahead measured 5-35% slower than the hardware prefetcher
// alone on a DRAM-sized GEMV.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "avx2/simd_common.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::avx2 {
namespace {

// ---- activation quantization (bit-identical to scalar::quantize_act) --------------

void quantize_act(const float* x, int64_t K, int8_t* qs, ActBlock* meta) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t b = 0; b < K / 32; ++b) {
    const float* xb = x + b * 32;
    const __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
    const __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
    if (non_finite(v0, v1, v2, v3)) {  // codes 0, d NaN (kernel_table.hpp)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * 32), _mm256_setzero_si256());
      meta[b] = ActBlock{NAN, 0, NAN};
      continue;
    }
    // max(a, b) returns b when either is NaN: keeping a non-NaN second operand
    // ignores NaN inputs as std::fmax does.
    const __m256 a01 = _mm256_max_ps(_mm256_and_ps(v1, absmask), _mm256_max_ps(_mm256_and_ps(v0, absmask), zero));
    const __m256 a23 = _mm256_max_ps(_mm256_and_ps(v3, absmask), _mm256_max_ps(_mm256_and_ps(v2, absmask), zero));
    const float amax = hmax(_mm256_max_ps(a01, a23));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    // cvtps rounds to nearest even under the default MXCSR, as nearbyint does.
    const __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid));
    const __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
    const __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid));
    const __m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
    // int8_t(q) keeps the low byte: the same as saturation for |q| <= 127, and also
    // what the scalar code gives where the conversion overflows (x * id infinite or
    // NaN: amax subnormal, or x infinite): 0x80000000 -> 0.
    const __m256i lo = _mm256_set1_epi32(0xFF);
    const __m256i p = _mm256_packus_epi16(
        _mm256_packus_epi32(_mm256_and_si256(q0, lo), _mm256_and_si256(q1, lo)),
        _mm256_packus_epi32(_mm256_and_si256(q2, lo), _mm256_and_si256(q3, lo)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * 32), _mm256_permutevar8x32_epi32(p, perm));
    const int32_t s = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
    meta[b] = ActBlock{d, s, d * float(s)};
  }
}

// ---- integer path ------------------------------------------------------------------

// One row group (two 8-row halves, NH) x MR activation rows starting at m, over
// all of K. (Running the halves one after the other, to free registers for MR,
// measured slower.)
template <Family F, bool BF, int MR>
void int_tile(const Packed& w, const ActQ8& x, const GemmTask& t, int64_t g, int64_t m) {
  constexpr bool kAffine = F == kAffine4;
  constexpr int NH = 2;
  const uint8_t* grp = group_ptr(w, g);
  const int64_t nb = x.K / 32;
  const int8_t* xq[MR];
  const ActBlock* xm[MR];
  for (int i = 0; i < MR; ++i) {
    xq[i] = x.qs + (m + i) * x.K;
    xm[i] = x.meta + (m + i) * nb;
  }
  const __m256i ones = _mm256_set1_epi16(1);
  // The fp32 sums live in L1 (one load and store per block): in registers, beside
  // the 2 * MR integer sums and the weights, they spilled anyway.
  alignas(32) float acc[MR][NH][8];
  zero_sums(acc);

  const size_t sgb = w.scale_group_bytes, hb = w.header_bytes, sbb = w.sub_block_bytes;
  const int bps = w.bps;
  for (int64_t s = 0; s < w.scale_groups; ++s) {
    const uint8_t* sg = grp + size_t(s) * sgb;
    __m256 dw[NH], mw[NH];
    for (int h = 0; h < NH; ++h) {
      dw[h] = load_scales8<BF>(sg + 16 * h);
      mw[h] = kAffine ? load_scales8<BF>(sg + 32 + 16 * h) : _mm256_setzero_ps();
    }
    for (int b = 0; b < bps; ++b) {
      const uint8_t* sub = sg + hb + size_t(b) * sbb;
      const int64_t kb = s * bps + b;
      __m256i isum[MR][NH];
      if constexpr (F == kQ8) {
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
          __m256i wv[NH], u[NH];
          for (int h = 0; h < NH; ++h) {
            wv[h] = load256(sub + 64 * c + 32 * h);
            u[h] = _mm256_abs_epi8(wv[h]);
          }
#pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {
            const __m256i xa = bcast4(xq[i] + kb * 32 + 4 * c);
            for (int h = 0; h < NH; ++h) {
              const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u[h], _mm256_sign_epi8(xa, wv[h])), ones);
              isum[i][h] = c == 0 ? p : _mm256_add_epi32(isum[i][h], p);
              pin(isum[i][h]);
            }
          }
        }
      } else {
        const __m256i mask = _mm256_set1_epi8(0x0F);
        __m256i s16[MR][NH];
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          __m256i lo[NH], hi[NH];
          for (int h = 0; h < NH; ++h) {
            const __m256i v = load256(sub + 64 * j + 32 * h);
            lo[h] = _mm256_and_si256(v, mask);
            hi[h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
          }
#pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {
            const __m256i xl = bcast4(xq[i] + kb * 32 + 4 * j);
            const __m256i xh = bcast4(xq[i] + kb * 32 + 16 + 4 * j);
            for (int h = 0; h < NH; ++h) {
              const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], xl), _mm256_maddubs_epi16(hi[h], xh));
              s16[i][h] = j == 0 ? p : _mm256_add_epi16(s16[i][h], p);
              pin(s16[i][h]);
            }
          }
        }
        for (int i = 0; i < MR; ++i)
          for (int h = 0; h < NH; ++h) isum[i][h] = _mm256_madd_epi16(s16[i][h], ones);
      }
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const ActBlock& ab = xm[i][kb];
        const __m256 d = _mm256_set1_ps(ab.d);
        for (int h = 0; h < NH; ++h) {
          if constexpr (F == kSym4) isum[i][h] = _mm256_sub_epi32(isum[i][h], _mm256_set1_epi32(8 * ab.s));
          __m256 a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][h]), _mm256_mul_ps(dw[h], d), _mm256_load_ps(acc[i][h]));
          if constexpr (kAffine) a = _mm256_fmadd_ps(mw[h], _mm256_set1_ps(ab.ds), a);
          _mm256_store_ps(acc[i][h], a);
        }
      }
      __asm__ volatile("" ::: "memory");  // keeps acc in memory
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int h = 0; h < NH; ++h) store8(t.y + (m + i) * t.ldy, g * 16 + 8 * h, w.rows, _mm256_load_ps(acc[i][h]));
}

template <Family F, bool BF>
void gemm_int(const Packed& w, const ActQ8& x, const GemmTask& t) {
  drive(
      w, t, [&](int64_t g, int64_t m) { int_tile<F, BF, 1>(w, x, t, g, m); },
      [&](int64_t g, int64_t m) { int_tile<F, BF, 2>(w, x, t, g, m); },
      [&](int64_t g, int64_t m) { int_tile<F, BF, 3>(w, x, t, g, m); },
      [&](int64_t g, int64_t m) { int_tile<F, BF, 4>(w, x, t, g, m); });
}

// ---- float path --------------------------------------------------------------------

// Weight k (0..31) of the 8 rows of one half of a sub-block as fp32 (value: code - 8,
// code, or the int8). p: the sub-block plus 32 * half; chunk j sits at p + 64 j.
template <Family F>
inline __m256 weight_k(const uint8_t* p, int k) {
  // A fresh load for every k: kept in registers across the block (the compiler's
  // choice otherwise), the 8-16 chunk vectors of a tile would spill.
  __asm__ volatile("" : "+r"(p));
  if constexpr (F == kQ8) {
    const __m256i c = load256(p + 64 * (k >> 2));
    const int i = k & 3;
    const __m256i e = i == 3 ? c : _mm256_slli_epi32(c, 24 - 8 * i);
    return _mm256_cvtepi32_ps(_mm256_srai_epi32(e, 24));
  } else {
    const __m256i c = load256(p + 64 * ((k & 15) >> 2));
    const int sh = 8 * (k & 3) + (k >= 16 ? 4 : 0);
    __m256i e = _mm256_and_si256(sh ? _mm256_srli_epi32(c, sh) : c, _mm256_set1_epi32(15));
    if constexpr (F == kSym4) e = _mm256_sub_epi32(e, _mm256_set1_epi32(8));
    return _mm256_cvtepi32_ps(e);
  }
}

// One row group x MR rows of x; NB consecutive blocks are processed together so
// that MR * 2 * NB independent FMA chains hide the FMA latency.
template <Family F, bool BF, int MR, int NB>
void float_tile(const Packed& w, const ActF32& x, const GemmTask& t, int64_t g, int64_t m) {
  constexpr bool kAffine = F == kAffine4;
  const uint8_t* grp = group_ptr(w, g);
  const int64_t nb = w.cols / 32;
  const float* xr[MR];
  const float* xs[MR];
  for (int i = 0; i < MR; ++i) {
    xr[i] = x.x + (m + i) * x.ldx;
    xs[i] = x.xsum + (m + i) * nb;
  }
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const int bps = w.bps;
  const bool pow2 = (bps & (bps - 1)) == 0;
  const int lbps = __builtin_ctz(unsigned(bps));

  // The blocks kb .. kb + n - 1 (n <= NB), accumulated in order.
  auto blocks = [&](int64_t kb, auto n_const) {
    constexpr int n = decltype(n_const)::value;
    const uint8_t* sub[n];
    const uint8_t* sg[n];
    for (int q = 0; q < n; ++q) {
      const int64_t s = pow2 ? (kb + q) >> lbps : (kb + q) / bps, b = pow2 ? (kb + q) & (bps - 1) : (kb + q) % bps;
      sg[q] = grp + size_t(s) * w.scale_group_bytes;
      sub[q] = sg[q] + w.header_bytes + size_t(b) * w.sub_block_bytes;
    }
    __m256 tq[n][MR][2];
    for (int q = 0; q < n; ++q)
      for (int i = 0; i < MR; ++i) tq[q][i][0] = tq[q][i][1] = _mm256_setzero_ps();
    // Both halves in the same k loop: 2 * MR * n independent chains.
#pragma GCC unroll 32
    for (int k = 0; k < 32; ++k) {
#pragma GCC unroll 4
      for (int q = 0; q < n; ++q) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256 wk = weight_k<F>(sub[q] + 32 * h, k);
#pragma GCC unroll 4
          for (int i = 0; i < MR; ++i)
            tq[q][i][h] = _mm256_fmadd_ps(wk, _mm256_broadcast_ss(xr[i] + (kb + q) * 32 + k), tq[q][i][h]);
        }
      }
    }
    for (int q = 0; q < n; ++q) {
      const __m256 dw0 = load_scales8<BF>(sg[q]), dw1 = load_scales8<BF>(sg[q] + 16);
      for (int i = 0; i < MR; ++i) {
        acc[i][0] = _mm256_fmadd_ps(tq[q][i][0], dw0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(tq[q][i][1], dw1, acc[i][1]);
        if constexpr (kAffine) {
          const __m256 xsb = _mm256_broadcast_ss(xs[i] + kb + q);
          acc[i][0] = _mm256_fmadd_ps(load_scales8<BF>(sg[q] + 32), xsb, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(load_scales8<BF>(sg[q] + 48), xsb, acc[i][1]);
        }
      }
    }
  };
  int64_t kb = 0;
  for (; kb + NB <= nb; kb += NB) blocks(kb, std::integral_constant<int, NB>{});
  for (; kb < nb; ++kb) blocks(kb, std::integral_constant<int, 1>{});
  for (int i = 0; i < MR; ++i) {
    store8(t.y + (m + i) * t.ldy, g * 16, w.rows, acc[i][0]);
    store8(t.y + (m + i) * t.ldy, g * 16 + 8, w.rows, acc[i][1]);
  }
}

template <Family F, bool BF>
void gemm_float(const Packed& w, const ActF32& x, const GemmTask& t) {
  drive(
      w, t, [&](int64_t g, int64_t m) { float_tile<F, BF, 1, 4>(w, x, t, g, m); },
      [&](int64_t g, int64_t m) { float_tile<F, BF, 2, 2>(w, x, t, g, m); },
      [&](int64_t g, int64_t m) { float_tile<F, BF, 3, 1>(w, x, t, g, m); },
      [&](int64_t g, int64_t m) { float_tile<F, BF, 4, 1>(w, x, t, g, m); });
}

template <Family F>
void set(KernelTable& t) {
  t.gemm_int[F][0] = gemm_int<F, false>;
  t.gemm_int[F][1] = gemm_int<F, true>;
  t.gemm_float[F][0] = gemm_float<F, false>;
  t.gemm_float[F][1] = gemm_float<F, true>;
}

}  // namespace

void fill(KernelTable& t) {
  t.quantize_act = quantize_act;
  set<kSym4>(t);
  set<kAffine4>(t);
  set<kQ8>(t);
  fill_i16(t);
  fill_elementwise(t);
  fill_dense(t);
  fill_attention(t);
}

}  // namespace halfbyte::kernels::avx2
