// AArch64 NEON kernels with the dot-product extension (ARMv8.2-A +dotprod +fp16).
//
// Layout (include/halfbyte/ops/packed.hpp): a 16-byte load at chunk j, offset 16*qq
// of a sub-block holds rows 4qq..4qq+3 x 4 consecutive k. `sdot` by element
// (vdotq_laneq_s32) multiplies it by 4 activation bytes broadcast from one lane,
// so a 4-lane int32 accumulator holds the block sums of 4 weight rows: no
// horizontal sums anywhere. A tile is up to 4 activation rows x 8 or 16 rows of
// one row group; the weights of a block are unpacked once per tile and used for
// all its activation rows.
//
// Integer path: bit-identical to kernels/scalar/gemm.cpp (isum is an exact
// integer, then the same fp32 operations in the same order per output).
// Float path: per output the same sequential FMA chain over k as the scalar code
// (one lane per weight row), so it is bit-identical too.
//
// Everything here has internal linkage: this file is compiled for a newer
// -march than the rest of the library, and no inline function may leak out of it.
#include <arm_neon.h>

#include <cmath>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "kernel_table.hpp"
#include "neon/neon_kernels.hpp"

#if defined(__GNUC__) && !defined(__clang__)
// GCC's pre-register-allocation scheduler hoists all weight loads of a block and
// then spills the accumulators; without it the kernels keep them in registers.
#pragma GCC optimize("no-schedule-insns")
#endif

namespace halfbyte::kernels::neon {
namespace {

#include "neon/neon_common.inl"

constexpr int kMaxRows = 4;  // activation rows per tile

// Columns n0 .. n0 + 4*QN - 1 of an output row, only those < valid.
template <int QN>
HB_INLINE void store_quads(float* y, const float32x4_t (&acc)[QN], int n0, int valid) {
  if (n0 + 4 * QN <= valid) {
    for (int q = 0; q < QN; ++q) vst1q_f32(y + n0 + 4 * q, acc[q]);
    return;
  }
  float tmp[4 * QN];
  for (int q = 0; q < QN; ++q) vst1q_f32(tmp + 4 * q, acc[q]);
  for (int n = 0; n < 4 * QN && n0 + n < valid; ++n) y[n0 + n] = tmp[n];
}

// ---- activation quantization ------------------------------------------------------

void quantize_act(const float* x, int64_t K, int8_t* qs, ActBlock* meta) {
  for (int64_t b = 0; b < K / 32; ++b) {
    const float* xb = x + b * 32;
    float32x4_t v[8];
    for (int i = 0; i < 8; ++i) v[i] = vld1q_f32(xb + 4 * i);
    uint32x4_t bad = vdupq_n_u32(0);  // x - x is 0 but for NaN and infinities
    for (int i = 0; i < 8; ++i) {
      const float32x4_t z = vsubq_f32(v[i], v[i]);
      bad = vorrq_u32(bad, vmvnq_u32(vceqq_f32(z, z)));
    }
    if (vmaxvq_u32(bad) != 0) {  // codes 0, d NaN (kernel_table.hpp)
      vst1q_s8(qs + b * 32, vdupq_n_s8(0));
      vst1q_s8(qs + b * 32 + 16, vdupq_n_s8(0));
      meta[b] = ActBlock{NAN, 0, NAN};
      continue;
    }
    // fmax(0, |x|...) as the scalar code: maxNum ignores NaN like std::fmax.
    float32x4_t a = vdupq_n_f32(0.0f);
    for (int i = 0; i < 8; ++i) a = vmaxnmq_f32(a, vabsq_f32(v[i]));
    const float amax = vmaxnmvq_f32(a);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    int32x4_t q[8];
    int32x4_t sum = vdupq_n_s32(0);
    for (int i = 0; i < 8; ++i) {
      q[i] = vcvtnq_s32_f32(vmulq_n_f32(v[i], id));  // round to nearest, ties to even
      sum = vaddq_s32(sum, q[i]);
    }
    for (int h = 0; h < 2; ++h) {
      const int16x8_t lo = vcombine_s16(vmovn_s32(q[4 * h]), vmovn_s32(q[4 * h + 1]));
      const int16x8_t hi = vcombine_s16(vmovn_s32(q[4 * h + 2]), vmovn_s32(q[4 * h + 3]));
      vst1q_s8(qs + b * 32 + 16 * h, vcombine_s8(vmovn_s16(lo), vmovn_s16(hi)));
    }
    const int32_t s = vaddvq_s32(sum);
    meta[b] = ActBlock{d, s, d * float(s)};
  }
}

// ---- integer path -----------------------------------------------------------------

// is[i] += (4 rows x 4 k of wv) . (lane L of xv[i], broadcast).
template <int L, int MR>
HB_INLINE void dot_lane(int32x4_t (&is)[MR], int8x16_t wv, const int8x16_t (&xv)[MR]) {
  unroll<MR>([&](auto ic) HB_LAMBDA_INLINE {
    constexpr int i = decltype(ic)::value;
    is[i] = vdotq_laneq_s32(is[i], wv, xv[i], L);
  });
}

// One 4-bit chunk J of 4 rows: low nibbles are k = 4J..4J+3, high ones k + 16.
template <int J, int MR>
HB_INLINE void dot_nibbles(int32x4_t (&is)[MR], const uint8_t* p, const int8x16_t (&xl)[MR],
                        const int8x16_t (&xh)[MR]) {
  const uint8x16_t raw = vld1q_u8(p + J * 64);
  dot_lane<J>(is, vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0F))), xl);
  dot_lane<J>(is, vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), xh);
}

// One q8 chunk C of 4 rows: k = 4C..4C+3.
template <int C, int MR>
HB_INLINE void dot_q8(int32x4_t (&is)[MR], const int8_t* p, const int8x16_t (&xl)[MR], const int8x16_t (&xh)[MR]) {
  const int8x16_t wv = vld1q_s8(p + C * 64);
  if constexpr (C < 4) {
    dot_lane<C>(is, wv, xl);
  } else {
    dot_lane<C - 4>(is, wv, xh);
  }
}

// Activation rows m0..m0+MR-1 against row quads Q0..Q0+QN-1 (rows 4*Q0.. of one
// group) over all of K; y points at column g*16 of row 0. MR x QN is chosen so
// that accumulators, activations and weights fit the 32 vector registers.
template <Family F, bool BF16, int MR, int Q0, int QN>
void int_tile(const Packed& w, const ActQ8& x, const uint8_t* grp, int64_t m0, float* y, int64_t ldy,
              int valid) {
  const int64_t nb = x.K / 32;
  const int8_t* xq[MR];
  const ActBlock* xm[MR];
  for (int i = 0; i < MR; ++i) {
    xq[i] = x.qs + (m0 + i) * x.K;
    xm[i] = x.meta + (m0 + i) * nb;
  }
  float32x4_t acc[MR][QN];
  for (int i = 0; i < MR; ++i)
    for (int q = 0; q < QN; ++q) acc[i][q] = vdupq_n_f32(0.0f);

  const uint8_t* sg = grp;
  int64_t kb = 0;
  for (int64_t s = 0; s < w.scale_groups; ++s, sg += w.scale_group_bytes) {
    const uint8_t* sub = sg + w.header_bytes;
    for (int b = 0; b < w.bps; ++b, ++kb, sub += w.sub_block_bytes) {
      int8x16_t xl[MR], xh[MR];
      int32_t start[MR];  // the integer sum starts at -8 s (sym4), else 0
      float32x4_t dx = vdupq_n_f32(0.0f), ds = vdupq_n_f32(0.0f);  // lane i: row i's d, d*s
      unroll<MR>([&](auto ic) HB_LAMBDA_INLINE {
        constexpr int i = decltype(ic)::value;
        const ActBlock* a = xm[i] + kb;
        xl[i] = vld1q_s8(xq[i] + kb * 32);
        xh[i] = vld1q_s8(xq[i] + kb * 32 + 16);
        dx = vld1q_lane_f32(&a->d, dx, i);
        if constexpr (F == kAffine4) ds = vld1q_lane_f32(&a->ds, ds, i);
        start[i] = F == kSym4 ? -8 * a->s : 0;
      });
      unroll<QN>([&](auto qc) HB_LAMBDA_INLINE {
        constexpr int q = decltype(qc)::value, qq = Q0 + q;
        int32x4_t is[MR];
        for (int i = 0; i < MR; ++i) is[i] = vdupq_n_s32(start[i]);
        if constexpr (F == kQ8) {
          const int8_t* p = reinterpret_cast<const int8_t*>(sub) + 16 * qq;
          dot_q8<0>(is, p, xl, xh);
          dot_q8<1>(is, p, xl, xh);
          dot_q8<2>(is, p, xl, xh);
          dot_q8<3>(is, p, xl, xh);
          dot_q8<4>(is, p, xl, xh);
          dot_q8<5>(is, p, xl, xh);
          dot_q8<6>(is, p, xl, xh);
          dot_q8<7>(is, p, xl, xh);
        } else {
          const uint8_t* p = sub + 16 * qq;
          dot_nibbles<0>(is, p, xl, xh);
          dot_nibbles<1>(is, p, xl, xh);
          dot_nibbles<2>(is, p, xl, xh);
          dot_nibbles<3>(is, p, xl, xh);
        }
        const float32x4_t dw = scales4<BF16>(sg + 8 * qq);
        float32x4_t mw = dw;
        if constexpr (F == kAffine4) mw = scales4<BF16>(sg + 32 + 8 * qq);
        unroll<MR>([&](auto ic) HB_LAMBDA_INLINE {
          constexpr int i = decltype(ic)::value;
          // acc = fma(float(isum), dw * d, acc); affine: acc = fma(mw, d * s, acc)
          acc[i][q] = vfmaq_f32(acc[i][q], vcvtq_f32_s32(is[i]), vmulq_laneq_f32(dw, dx, i));
          if constexpr (F == kAffine4) acc[i][q] = vfmaq_laneq_f32(acc[i][q], mw, ds, i);
        });
      });
    }
  }
  for (int i = 0; i < MR; ++i) store_quads(y + (m0 + i) * ldy, acc[i], 4 * Q0, valid);
}

// Rows m..m+MR-1 against one group: in one pass, or in two passes of 8 weight rows
// when MR rows x 16 weight rows would not fit the registers. A pass whose rows are
// all past the end of W is skipped.
template <Family F, bool BF16, int MR>
HB_INLINE void int_rows(const Packed& w, const ActQ8& x, const uint8_t* grp, int64_t m, float* y, int64_t ldy,
                     int valid) {
  if constexpr (MR <= 3) {
    int_tile<F, BF16, MR, 0, 4>(w, x, grp, m, y, ldy, valid);
  } else {
    int_tile<F, BF16, MR, 0, 2>(w, x, grp, m, y, ldy, valid);
    if (valid > 8) int_tile<F, BF16, MR, 2, 2>(w, x, grp, m, y, ldy, valid);
  }
}

template <Family F, bool BF16>
void gemm_int(const Packed& w, const ActQ8& x, const GemmTask& t) {
  for (int64_t g = t.g0; g < t.g1; ++g) {
    const uint8_t* grp = w.data + size_t(g) * w.row_group_bytes;
    const int64_t left = w.rows - g * 16;
    const int valid = left < 16 ? int(left) : 16;
    float* y = t.y + g * 16;
    int64_t m = t.m0;
    for (; m + kMaxRows <= t.m1; m += kMaxRows) int_rows<F, BF16, kMaxRows>(w, x, grp, m, y, t.ldy, valid);
    switch (t.m1 - m) {
      case 3: int_rows<F, BF16, 3>(w, x, grp, m, y, t.ldy, valid); break;
      case 2: int_rows<F, BF16, 2>(w, x, grp, m, y, t.ldy, valid); break;
      case 1: int_rows<F, BF16, 1>(w, x, grp, m, y, t.ldy, valid); break;
      default: break;
    }
  }
}

// ---- float path -------------------------------------------------------------------

// 16 int8 ordered [k i][row r] -> f[i] = rows 0..3 at k i, as fp32 (exact).
HB_INLINE void widen4(int8x16_t v, float32x4_t (&f)[4]) {
  const int16x8_t a = vmovl_s8(vget_low_s8(v)), b = vmovl_high_s8(v);
  f[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(a)));
  f[1] = vcvtq_f32_s32(vmovl_high_s16(a));
  f[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(b)));
  f[3] = vcvtq_f32_s32(vmovl_high_s16(b));
}

// t[i] = fma chain over the 4 k of f with activations xk[i][0..3], in k order.
template <int MR>
HB_INLINE void fma4(float32x4_t (&t)[MR], const float32x4_t (&f)[4], const float* const (&xk)[MR]) {
  unroll<MR>([&](auto ic) HB_LAMBDA_INLINE {
    constexpr int i = decltype(ic)::value;
    const float32x4_t xv = vld1q_f32(xk[i]);
    float32x4_t v = t[i];
    v = vfmaq_laneq_f32(v, f[0], xv, 0);
    v = vfmaq_laneq_f32(v, f[1], xv, 1);
    v = vfmaq_laneq_f32(v, f[2], xv, 2);
    v = vfmaq_laneq_f32(v, f[3], xv, 3);
    t[i] = v;
  });
}

// Activation rows m0..m0+MR-1 against row quads Q0..Q0+QN-1 of one group. Per
// block, the weights of 4 rows x 4 k are transposed (tbl) so that one vector holds
// 4 rows at one k, widened to fp32 once and used for all MR activation rows; each
// lane then runs the scalar code's sequential FMA chain over k = 0..31.
template <Family F, bool BF16, int MR, int Q0, int QN>
void float_tile(const Packed& w, const ActF32& x, const uint8_t* grp, int64_t m0, float* y, int64_t ldy,
                int valid) {
  const int64_t nb = w.cols / 32;
  const float* xr[MR];
  const float* xsr[MR];
  for (int i = 0; i < MR; ++i) {
    xr[i] = x.x + (m0 + i) * x.ldx;
    xsr[i] = x.xsum + (m0 + i) * nb;
  }
  float32x4_t acc[MR][QN];
  for (int i = 0; i < MR; ++i)
    for (int q = 0; q < QN; ++q) acc[i][q] = vdupq_n_f32(0.0f);
  const uint8x16_t tr = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};  // [row][k] -> [k][row]

  const uint8_t* sg = grp;
  int64_t kb = 0;
  for (int64_t s = 0; s < w.scale_groups; ++s, sg += w.scale_group_bytes) {
    const uint8_t* sub = sg + w.header_bytes;
    for (int b = 0; b < w.bps; ++b, ++kb, sub += w.sub_block_bytes) {
      float32x4_t tt[QN][MR];
      for (int q = 0; q < QN; ++q)
        for (int i = 0; i < MR; ++i) tt[q][i] = vdupq_n_f32(0.0f);
      float32x4_t f[4];
      const float* xk[MR];
      if constexpr (F == kQ8) {
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
          for (int i = 0; i < MR; ++i) xk[i] = xr[i] + kb * 32 + 4 * c;
          unroll<QN>([&](auto qc) HB_LAMBDA_INLINE {
            constexpr int q = decltype(qc)::value;
            const uint8x16_t raw = vld1q_u8(sub + c * 64 + (Q0 + q) * 16);
            widen4(vreinterpretq_s8_u8(vqtbl1q_u8(raw, tr)), f);
            fma4(tt[q], f, xk);
          });
        }
      } else {
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {  // k 0..15 (low nibbles), then 16..31 (high)
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j) {
            for (int i = 0; i < MR; ++i) xk[i] = xr[i] + kb * 32 + 16 * h + 4 * j;
            unroll<QN>([&](auto qc) HB_LAMBDA_INLINE {
              constexpr int q = decltype(qc)::value;
              const uint8x16_t raw = vqtbl1q_u8(vld1q_u8(sub + j * 64 + (Q0 + q) * 16), tr);
              const uint8x16_t c = h ? vshrq_n_u8(raw, 4) : vandq_u8(raw, vdupq_n_u8(0x0F));
              int8x16_t v = vreinterpretq_s8_u8(c);
              if constexpr (F == kSym4) v = vsubq_s8(v, vdupq_n_s8(8));
              widen4(v, f);
              fma4(tt[q], f, xk);
            });
          }
        }
      }
      unroll<QN>([&](auto qc) HB_LAMBDA_INLINE {
        constexpr int q = decltype(qc)::value;
        const float32x4_t dw = scales4<BF16>(sg + 8 * (Q0 + q));
        float32x4_t mw = dw;
        if constexpr (F == kAffine4) mw = scales4<BF16>(sg + 32 + 8 * (Q0 + q));
        unroll<MR>([&](auto ic) HB_LAMBDA_INLINE {
          constexpr int i = decltype(ic)::value;
          acc[i][q] = vfmaq_f32(acc[i][q], tt[q][i], dw);  // acc = fma(t, dw, acc)
          if constexpr (F == kAffine4) acc[i][q] = vfmaq_n_f32(acc[i][q], mw, xsr[i][kb]);  // fma(mw, xsum, acc)
        });
      });
    }
  }
  for (int i = 0; i < MR; ++i) store_quads(y + (m0 + i) * ldy, acc[i], 4 * Q0, valid);
}

template <Family F, bool BF16, int MR>
HB_INLINE void float_rows(const Packed& w, const ActF32& x, const uint8_t* grp, int64_t m, float* y, int64_t ldy,
                       int valid) {
  if constexpr (MR == 1) {
    float_tile<F, BF16, MR, 0, 4>(w, x, grp, m, y, ldy, valid);
  } else {
    float_tile<F, BF16, MR, 0, 2>(w, x, grp, m, y, ldy, valid);
    if (valid > 8) float_tile<F, BF16, MR, 2, 2>(w, x, grp, m, y, ldy, valid);
  }
}

template <Family F, bool BF16>
void gemm_float(const Packed& w, const ActF32& x, const GemmTask& t) {
  for (int64_t g = t.g0; g < t.g1; ++g) {
    const uint8_t* grp = w.data + size_t(g) * w.row_group_bytes;
    const int64_t left = w.rows - g * 16;
    const int valid = left < 16 ? int(left) : 16;
    float* y = t.y + g * 16;
    int64_t m = t.m0;
    for (; m + kMaxRows <= t.m1; m += kMaxRows) float_rows<F, BF16, kMaxRows>(w, x, grp, m, y, t.ldy, valid);
    switch (t.m1 - m) {
      case 3: float_rows<F, BF16, 3>(w, x, grp, m, y, t.ldy, valid); break;
      case 2: float_rows<F, BF16, 2>(w, x, grp, m, y, t.ldy, valid); break;
      case 1: float_rows<F, BF16, 1>(w, x, grp, m, y, t.ldy, valid); break;
      default: break;
    }
  }
}

template <Family F>
void set_family(KernelTable& t) {
  t.gemm_int[F][0] = gemm_int<F, false>;
  t.gemm_int[F][1] = gemm_int<F, true>;
  t.gemm_float[F][0] = gemm_float<F, false>;
  t.gemm_float[F][1] = gemm_float<F, true>;
}

#undef HB_INLINE
#undef HB_LAMBDA_INLINE

}  // namespace

GemmIntFn gemm_int_kernel(Family f, bool bf16) {
  switch (f) {
    case kSym4: return bf16 ? gemm_int<kSym4, true> : gemm_int<kSym4, false>;
    case kAffine4: return bf16 ? gemm_int<kAffine4, true> : gemm_int<kAffine4, false>;
    default: return bf16 ? gemm_int<kQ8, true> : gemm_int<kQ8, false>;
  }
}

void fill(KernelTable& t) {
  t.isa = "neon";
  t.quantize_act = quantize_act;
  set_family<kSym4>(t);
  set_family<kAffine4>(t);
  set_family<kQ8>(t);
  fill_attention(t);
}

}  // namespace halfbyte::kernels::neon
