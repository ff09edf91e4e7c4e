// AArch64 integer GEMM with the int8 matrix-multiply extension (+i8mm), M >= 2.
//
// `smmla` (vmmlaq_s32) adds a 2x8 by 8x2 int8 product into a 2x2 int32 tile: two
// activation rows x two weight rows over 8 consecutive k. The packed layout (shared
// by every ISA, include/halfbyte/ops/packed.hpp) gives 4 rows x 4 consecutive k per
// 16-byte load; zipping the 32-bit lanes of chunks j and j+1 (vzip1q/vzip2q) yields
// rows (0, 1) and (2, 3) over 8 consecutive k, and the nibble split of that gives
// both k = 8j'..8j'+7 (low) and k = 16 + 8j'.. (high) operands. A tile is 4
// activation rows x 8 weight rows (or 2 x 16): 8 2x2 fp32 accumulators whose lanes
// are (m, n) (m, n+1) (m+1, n) (m+1, n+1).
//
// Same contract as the dotprod kernels: isum is an exact integer, then per block
// the scalar code's fp32 operations in its order, so results are bit-identical.
// M == 1 and the last row of an odd M go to the dotprod kernel (neon/gemm.cpp).
#include <arm_neon.h>

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

namespace halfbyte::kernels::neon_i8mm {
namespace {

#include "neon/neon_common.inl"

// [v0, v1, v0, v1] and [v2, v3, v2, v3]: one weight-row pair's values per 2x2 tile.
HB_INLINE float32x4_t lo_pair(float32x4_t v) {
  return vreinterpretq_f32_f64(vdupq_laneq_f64(vreinterpretq_f64_f32(v), 0));
}
HB_INLINE float32x4_t hi_pair(float32x4_t v) {
  return vreinterpretq_f32_f64(vdupq_laneq_f64(vreinterpretq_f64_f32(v), 1));
}
// [v_2p, v_2p, v_2p+1, v_2p+1]: activation pair p's values per 2x2 tile.
template <int P>
HB_INLINE float32x4_t act_pair(float32x4_t v) {
  if constexpr (P == 0) return vzip1q_f32(v, v);
  else return vzip2q_f32(v, v);
}
template <int P>
HB_INLINE int32x4_t act_pair(int32x4_t v) {
  if constexpr (P == 0) return vzip1q_s32(v, v);
  else return vzip2q_s32(v, v);
}

// Activation rows m0..m0+2*MP-1 (MP pairs) against row quads Q0..Q0+QN-1 of one
// group (weight row pairs 2*Q0..), over all of K; y points at column g*16 of row 0.
template <Family F, bool BF16, int MP, int Q0, int QN>
void mm_tile(const Packed& w, const ActQ8& x, const uint8_t* grp, int64_t m0, float* y, int64_t ldy, int valid) {
  const int64_t nb = x.K / 32;
  float32x4_t acc[MP][2 * QN];
  for (int p = 0; p < MP; ++p)
    for (int r = 0; r < 2 * QN; ++r) acc[p][r] = vdupq_n_f32(0.0f);

  const uint8_t* sg = grp;
  int64_t kb = 0;
  for (int64_t s = 0; s < w.scale_groups; ++s, sg += w.scale_group_bytes) {
    const uint8_t* sub = sg + w.header_bytes;
    for (int b = 0; b < w.bps; ++b, ++kb, sub += w.sub_block_bytes) {
      // xo[p][st]: activation rows (2p, 2p+1) over k = 8st..8st+7. Lane i of dx, ds,
      // st8: row i's d, d*s and -8*s (the sym4 integer sum starts there).
      int8x16_t xo[MP][4];
      float32x4_t dx = vdupq_n_f32(0.0f), ds = vdupq_n_f32(0.0f);
      int32x4_t st8 = vdupq_n_s32(0);
      unroll<MP>([&](auto pc) HB_LAMBDA_INLINE {
        constexpr int p = decltype(pc)::value;
        const int8_t* a = x.qs + (m0 + 2 * p) * x.K + kb * 32;
        const int8_t* c = a + x.K;
        const int64x2_t a0 = vreinterpretq_s64_s8(vld1q_s8(a)), a1 = vreinterpretq_s64_s8(vld1q_s8(a + 16));
        const int64x2_t c0 = vreinterpretq_s64_s8(vld1q_s8(c)), c1 = vreinterpretq_s64_s8(vld1q_s8(c + 16));
        xo[p][0] = vreinterpretq_s8_s64(vzip1q_s64(a0, c0));
        xo[p][1] = vreinterpretq_s8_s64(vzip2q_s64(a0, c0));
        xo[p][2] = vreinterpretq_s8_s64(vzip1q_s64(a1, c1));
        xo[p][3] = vreinterpretq_s8_s64(vzip2q_s64(a1, c1));
      });
      unroll<2 * MP>([&](auto ic) HB_LAMBDA_INLINE {
        constexpr int i = decltype(ic)::value;
        const ActBlock* a = x.meta + (m0 + i) * nb + kb;
        dx = vld1q_lane_f32(&a->d, dx, i);
        if constexpr (F == kAffine4) ds = vld1q_lane_f32(&a->ds, ds, i);
        if constexpr (F == kSym4) st8 = vsetq_lane_s32(-8 * a->s, st8, i);
      });
      unroll<QN>([&](auto qc) HB_LAMBDA_INLINE {
        constexpr int q = decltype(qc)::value, qq = Q0 + q;
        // is[p][h]: activation pair p x weight rows (4qq + 2h, 4qq + 2h + 1).
        int32x4_t is[MP][2];
        unroll<MP>([&](auto pc) HB_LAMBDA_INLINE {
          constexpr int p = decltype(pc)::value;
          is[p][0] = is[p][1] = act_pair<p>(st8);
        });
        if constexpr (F == kQ8) {
          const int8_t* q8 = reinterpret_cast<const int8_t*>(sub) + 16 * qq;
#pragma GCC unroll 4
          for (int k8 = 0; k8 < 4; ++k8) {  // chunks 2k8, 2k8+1: k = 8k8..8k8+7
            const int32x4_t c0 = vreinterpretq_s32_s8(vld1q_s8(q8 + (2 * k8) * 64));
            const int32x4_t c1 = vreinterpretq_s32_s8(vld1q_s8(q8 + (2 * k8 + 1) * 64));
            const int8x16_t wa = vreinterpretq_s8_s32(vzip1q_s32(c0, c1));
            const int8x16_t wb = vreinterpretq_s8_s32(vzip2q_s32(c0, c1));
            unroll<MP>([&](auto pc) HB_LAMBDA_INLINE {
              constexpr int p = decltype(pc)::value;
              is[p][0] = vmmlaq_s32(is[p][0], xo[p][k8], wa);
              is[p][1] = vmmlaq_s32(is[p][1], xo[p][k8], wb);
            });
          }
        } else {
          const uint8_t* q4 = sub + 16 * qq;
          const uint8x16_t m4 = vdupq_n_u8(0x0F);
#pragma GCC unroll 2
          for (int jp = 0; jp < 2; ++jp) {  // chunks 2jp, 2jp+1: k = 8jp.. (low), 16 + 8jp.. (high)
            const uint32x4_t c0 = vreinterpretq_u32_u8(vld1q_u8(q4 + (2 * jp) * 64));
            const uint32x4_t c1 = vreinterpretq_u32_u8(vld1q_u8(q4 + (2 * jp + 1) * 64));
            const uint8x16_t za = vreinterpretq_u8_u32(vzip1q_u32(c0, c1));
            const uint8x16_t zb = vreinterpretq_u8_u32(vzip2q_u32(c0, c1));
            const int8x16_t la = vreinterpretq_s8_u8(vandq_u8(za, m4)), lb = vreinterpretq_s8_u8(vandq_u8(zb, m4));
            const int8x16_t ha = vreinterpretq_s8_u8(vshrq_n_u8(za, 4)), hb = vreinterpretq_s8_u8(vshrq_n_u8(zb, 4));
            unroll<MP>([&](auto pc) HB_LAMBDA_INLINE {
              constexpr int p = decltype(pc)::value;
              is[p][0] = vmmlaq_s32(is[p][0], xo[p][jp], la);
              is[p][1] = vmmlaq_s32(is[p][1], xo[p][jp], lb);
              is[p][0] = vmmlaq_s32(is[p][0], xo[p][2 + jp], ha);
              is[p][1] = vmmlaq_s32(is[p][1], xo[p][2 + jp], hb);
            });
          }
        }
        const float32x4_t dw4 = scales4<BF16>(sg + 8 * qq);
        float32x4_t mw4 = dw4;
        if constexpr (F == kAffine4) mw4 = scales4<BF16>(sg + 32 + 8 * qq);
        unroll<MP>([&](auto pc) HB_LAMBDA_INLINE {
          constexpr int p = decltype(pc)::value;
          const float32x4_t dxp = act_pair<p>(dx);
          // acc = fma(float(isum), dw * d, acc); affine: acc = fma(mw, d * s, acc)
          float32x4_t& a0 = acc[p][2 * q];
          float32x4_t& a1 = acc[p][2 * q + 1];
          a0 = vfmaq_f32(a0, vcvtq_f32_s32(is[p][0]), vmulq_f32(lo_pair(dw4), dxp));
          a1 = vfmaq_f32(a1, vcvtq_f32_s32(is[p][1]), vmulq_f32(hi_pair(dw4), dxp));
          if constexpr (F == kAffine4) {
            const float32x4_t dsp = act_pair<p>(ds);
            a0 = vfmaq_f32(a0, lo_pair(mw4), dsp);
            a1 = vfmaq_f32(a1, hi_pair(mw4), dsp);
          }
        });
      });
    }
  }

  for (int p = 0; p < MP; ++p) {
    float* y0 = y + (m0 + 2 * p) * ldy;
    float* y1 = y0 + ldy;
    for (int r = 0; r < 2 * QN; ++r) {
      const int n = 4 * Q0 + 2 * r;
      if (n + 2 <= valid) {
        vst1_f32(y0 + n, vget_low_f32(acc[p][r]));
        vst1_f32(y1 + n, vget_high_f32(acc[p][r]));
      } else if (n < valid) {
        y0[n] = vgetq_lane_f32(acc[p][r], 0);
        y1[n] = vgetq_lane_f32(acc[p][r], 2);
      }
    }
  }
}

template <Family F, bool BF16>
void gemm_int(const Packed& w, const ActQ8& x, const GemmTask& t) {
  const int64_t M = t.m1 - t.m0;
  const int64_t even_end = t.m0 + (M & ~int64_t(1));
  if (M >= 2) {
    for (int64_t g = t.g0; g < t.g1; ++g) {
      const uint8_t* grp = w.data + size_t(g) * w.row_group_bytes;
      const int64_t left = w.rows - g * 16;
      const int valid = left < 16 ? int(left) : 16;
      float* y = t.y + g * 16;
      int64_t m = t.m0;
      // 4 activation rows x 8 weight rows per pass (16 accumulators would not fit
      // next to the operands), then 2 x 16.
      for (; m + 4 <= even_end; m += 4) {
        mm_tile<F, BF16, 2, 0, 2>(w, x, grp, m, y, t.ldy, valid);
        if (valid > 8) mm_tile<F, BF16, 2, 2, 2>(w, x, grp, m, y, t.ldy, valid);
      }
      if (m < even_end) mm_tile<F, BF16, 1, 0, 4>(w, x, grp, m, y, t.ldy, valid);
    }
  }
  if (M & 1) {  // M == 1, or the last row of an odd M: the dotprod GEMV
    GemmTask r = t;
    r.m0 = t.m1 - 1;
    neon::gemm_int_kernel(F, BF16)(w, x, r);
  }
}

template <Family F>
void set_family(KernelTable& t) {
  t.gemm_int[F][0] = gemm_int<F, false>;
  t.gemm_int[F][1] = gemm_int<F, true>;
}

#undef HB_INLINE
#undef HB_LAMBDA_INLINE

}  // namespace

// Only the integer GEMM; quantize_act and the float path come from "neon".
void fill(KernelTable& t) {
  t.isa = "neon_i8mm";
  set_family<kSym4>(t);
  set_family<kAffine4>(t);
  set_family<kQ8>(t);
}

}  // namespace halfbyte::kernels::neon_i8mm
