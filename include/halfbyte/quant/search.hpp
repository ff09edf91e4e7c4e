// The error-minimising scale search of Method::Auto (quantize.hpp), reference
// arithmetic shared by every build: per block, candidate code assignments ranked by
// their least-squares error, the winner fitted with the stored (fp16/bf16-rounded)
// scale and refined. Its sums run in a fixed lane order and its code assignment four
// values at a time with SSE2 or NEON, so that they vectorize while every build gives
// the same bits. Also the block helpers the other quantizers share (scales as
// stored, Codes, clamps).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include "halfbyte/core/half.hpp"
#include "halfbyte/quant/format.hpp"

namespace halfbyte::quant::ref {

inline uint16_t store_scale(ScaleType t, float v) noexcept {
  return t == ScaleType::F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
}
inline float load_scale(ScaleType t, uint16_t bits) noexcept {
  return t == ScaleType::F16 ? fp16_to_fp32(bits) : bf16_to_fp32(bits);
}
inline float round_scale(ScaleType t, float v) noexcept { return load_scale(t, store_scale(t, v)); }

inline ScaleType scale_type(const Format& f) noexcept {
  return f.kind == Kind::Int4 ? f.scale : ScaleType::F16;
}

// Integer codes of one block before packing: xhat[j] = d * c[j] + m.
// Symmetric formats have m = 0 and c in [-8, 7] (4-bit) or [-127, 127] (q8_0);
// affine formats have c in [0, 15].
struct Codes {
  float d = 0.0f;
  float m = 0.0f;
  int c[kMaxBlock] = {};
};

// Clamps v to [lo, hi]; NaN becomes if_nan. Keeps float -> int casts defined when
// 1/d overflows for a subnormal scale (ggml leaves that case undefined).
inline float sat(float v, float lo, float hi, float if_nan) noexcept {
  if (!(v == v)) return if_nan;
  return v < lo ? lo : v > hi ? hi : v;
}

// Nearest integer code in [lo, hi] (ties to even) as a float; NaN gives 0. Clamps
// first, then rounds with the 1.5 * 2^23 trick (exact for |v| < 2^22), avoiding a
// libm call. The definition; codes_of does a block of them 4 at a time.
inline float clamp_code_f(float v, float lo, float hi) noexcept {
  v = v == v ? v : 0.0f;
  v = v < lo ? lo : v > hi ? hi : v;
  const float magic = 12582912.0f;  // IEEE arithmetic: the compiler keeps the add/sub pair
  return (v + magic) - magic;
}
inline int clamp_code(float v, int lo, int hi) noexcept {
  return int(clamp_code_f(v, float(lo), float(hi)));
}

// c[j] = clamp_code_f((x[j] - off) * inv, lo, hi) for j < n. Four at a time with
// SSE2 or NEON (the baselines of x86-64 and AArch64: compilers do not vectorize the
// clamps by themselves, their comparisons being able to trap), the same IEEE
// operations and results.
inline void codes_of(const float* x, int n, float off, float inv, float lo, float hi,
                     float* c) noexcept {
  int j = 0;
#if defined(__SSE2__)
  const __m128 vo = _mm_set1_ps(off), vi = _mm_set1_ps(inv), vl = _mm_set1_ps(lo),
               vh = _mm_set1_ps(hi), magic = _mm_set1_ps(12582912.0f);
  for (; j + 4 <= n; j += 4) {
    __m128 v = _mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(x + j), vo), vi);
    v = _mm_and_ps(v, _mm_cmpord_ps(v, v));  // NaN -> 0
    v = _mm_min_ps(_mm_max_ps(v, vl), vh);   // equal to the scalar clamp but for the sign of
    _mm_storeu_ps(c + j, _mm_sub_ps(_mm_add_ps(v, magic), magic));  // a zero, which + magic drops
  }
#elif defined(__ARM_NEON)
  const float32x4_t vo = vdupq_n_f32(off), vi = vdupq_n_f32(inv), vl = vdupq_n_f32(lo),
                    vh = vdupq_n_f32(hi), magic = vdupq_n_f32(12582912.0f);
  for (; j + 4 <= n; j += 4) {
    float32x4_t v = vmulq_f32(vsubq_f32(vld1q_f32(x + j), vo), vi);
    v = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), vceqq_f32(v, v)));  // NaN -> 0
    v = vminq_f32(vmaxq_f32(v, vl), vh);
    vst1q_f32(c + j, vsubq_f32(vaddq_f32(v, magic), magic));
  }
#endif
  for (; j < n; ++j) c[j] = clamp_code_f((x[j] - off) * inv, lo, hi);
}
inline void codes_of(const float* x, int n, float off, float inv, int lo, int hi, Codes& q) noexcept {
  float c[kMaxBlock];
  codes_of(x, n, off, inv, float(lo), float(hi), c);
  for (int j = 0; j < n; ++j) q.c[j] = int(c[j]);
}

// fmax / fmin for finite inputs (the quantizers check them first): plain comparisons,
// where fmaxf and fminf are library calls.
inline float fmax_finite(float a, float b) noexcept { return b > a ? b : a; }
inline float fmin_finite(float a, float b) noexcept { return b < a ? b : a; }

// ---- sums in a fixed order -----------------------------------------------------------------
//
// The search's sums over a block add term j into lane j % kLanes and fold the lanes
// pairwise at the end. The order is part of the definition: every build gives the
// same bits (no reassociation; CMakeLists.txt turns FMA contraction off), and the
// compiler turns the lanes into vector code (a sum in block order is one long
// dependency chain: 4 cycles per term).
constexpr int kLanes = 8;

template <class Term>
inline double lane_sum(int n, Term term) noexcept {
  double a[kLanes] = {};
  int j0 = 0;
  for (; j0 + kLanes <= n; j0 += kLanes)
    for (int l = 0; l < kLanes; ++l) a[l] += term(j0 + l);
  for (int l = 0; l < kLanes && j0 + l < n; ++l) a[l] += term(j0 + l);  // a tail (n is 16, 32, 64 or 128)
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// ---- error-minimising search ---------------------------------------------------------------

// A block under search: its values, its importance (null: all ones) and, as
// doubles, the importance and importance * x that the sums take.
struct Block {
  const float* x;
  int n;
  double w[kMaxBlock];
  double wx[kMaxBlock];
  Block(const float* x_, const float* imp, int n_) noexcept : x(x_), n(n_) {
    for (int j = 0; j < n; ++j) {
      w[j] = imp ? double(imp[j]) : 1.0;
      wx[j] = w[j] * double(x[j]);
    }
  }
  // Weighted squared error of the block as q stores it.
  double error(const Codes& q) const noexcept {
    const double d = q.d, m = q.m;
    return lane_sum(n, [&](int j) {
      const double r = double(x[j]) - (d * q.c[j] + m);
      return w[j] * r * r;
    });
  }
};

inline double block_error(const float* x, const float* w, int n, const Codes& q) noexcept {
  return Block(x, w, n).error(q);
}

// Least-squares scale for fixed codes, rounded to storage. Returns false if undefined.
inline bool fit_sym(const Block& b, ScaleType st, Codes& q) noexcept {
  const double sxl = lane_sum(b.n, [&](int j) { return b.wx[j] * q.c[j]; });
  const double sll = lane_sum(b.n, [&](int j) { return b.w[j] * q.c[j] * q.c[j]; });
  if (sll <= 0.0) return false;
  q.d = round_scale(st, float(sxl / sll));
  q.m = 0.0f;
  return std::isfinite(q.d);
}

// Least-squares (d, m) for fixed codes, rounded to storage.
inline bool fit_affine(const Block& b, ScaleType st, Codes& q) noexcept {
  const int n = b.n;
  const double s0 = lane_sum(n, [&](int j) { return b.w[j]; });
  const double s1 = lane_sum(n, [&](int j) { return b.w[j] * q.c[j]; });
  const double s2 = lane_sum(n, [&](int j) { return b.w[j] * q.c[j] * q.c[j]; });
  const double sx = lane_sum(n, [&](int j) { return b.wx[j]; });
  const double sxl = lane_sum(n, [&](int j) { return b.wx[j] * q.c[j]; });
  if (s0 <= 0.0) return false;
  const double det = s0 * s2 - s1 * s1;
  if (det <= 1e-12 * s0 * s2) {  // all codes equal: only the min is defined
    q.d = 0.0f;
    q.m = round_scale(st, float(sx / s0));
  } else {
    q.d = round_scale(st, float((s0 * sxl - s1 * sx) / det));
    q.m = round_scale(st, float((s2 * sx - s1 * sxl) / det));
  }
  return std::isfinite(q.d) && std::isfinite(q.m);
}

// Alternates "assign codes for the stored scale" and "refit the scale for the codes"
// while the error drops. `err` is the error of q on entry and on return.
inline void refine(const Block& b, ScaleType st, int lo, int hi, bool affine, Codes& q,
                   double& err) noexcept {
  for (int it = 0; it < 4 && q.d != 0.0f; ++it) {
    Codes t = q;
    const float inv = 1.0f / q.d;
    codes_of(b.x, b.n, q.m, inv, lo, hi, t);
    if (!(affine ? fit_affine(b, st, t) : fit_sym(b, st, t))) return;
    const double e = b.error(t);
    if (!(e < err)) return;
    q = t;
    err = e;
  }
}

// Candidate code assignments are ranked by their least-squares error with an
// exact (unrounded) scale, which has a closed form; only the winner is fitted with
// the stored scale, refined, and compared with the incumbent (RTN) on the exact
// stored error. So the result is never worse than RTN.

inline void search_sym(const float* x, const float* w, int n, ScaleType st, int lo, int hi,
                       Codes& best, double& best_err) noexcept {
  float amax = 0.0f, vmax = 0.0f;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      vmax = x[j];
    }
  if (amax == 0.0f) return;
  const Block b(x, w, n);
  // Candidate scales map the extreme value near either end of the code range.
  const float span = hi - lo > 16 ? 5.0f : 1.5f;
  const int steps = 20;
  float c[kMaxBlock];
  float win_inv = 0.0f;
  double win_score = -1.0;  // maximise sxl^2 / sll  <=>  minimise the error
  for (int side = 0; side < 2; ++side) {
    const float t0 = side == 0 ? float(lo) - 0.5f : float(hi) - span;
    for (int s = 0; s <= steps; ++s) {
      const float t = t0 + (span + 0.5f) * float(s) / float(steps);
      if (t == 0.0f) continue;
      const float inv = t / vmax;
      codes_of(x, n, 0.0f, inv, float(lo), float(hi), c);
      const double sxl = lane_sum(n, [&](int j) { return b.wx[j] * c[j]; });
      const double sll = lane_sum(n, [&](int j) { return b.w[j] * c[j] * c[j]; });
      if (sll <= 0.0) continue;
      const double score = sxl * sxl / sll;
      if (score > win_score) {
        win_score = score;
        win_inv = inv;
      }
    }
  }
  if (win_score < 0.0) return;
  Codes win;
  codes_of(x, n, 0.0f, win_inv, lo, hi, win);
  if (!fit_sym(b, st, win)) return;
  double e = b.error(win);
  refine(b, st, lo, hi, false, win, e);
  if (e < best_err) {
    best = win;
    best_err = e;
  }
}

// Codes 0..qmax (15 for the 4-bit formats, 31 for ggml's q5_1).
inline void search_affine(const float* x, const float* w, int n, ScaleType st, Codes& best,
                          double& best_err, int qmax = 15) noexcept {
  float mn = x[0], mx = x[0];
  for (int j = 1; j < n; ++j) {
    mn = fmin_finite(mn, x[j]);
    mx = fmax_finite(mx, x[j]);
  }
  const float r = mx - mn;
  if (!(r > 0.0f)) return;
  const Block b(x, w, n);
  const double s0 = lane_sum(n, [&](int j) { return b.w[j]; });
  const double sx = lane_sum(n, [&](int j) { return b.wx[j]; });
  const double sxx = lane_sum(n, [&](int j) { return b.wx[j] * x[j]; });
  float c[kMaxBlock];
  float win_lo = 0.0f, win_inv = 0.0f;
  double win_err = std::numeric_limits<double>::infinity();
  // Candidate ranges: the block's [min, max] shrunk from either end.
  for (int ia = 0; ia <= 6; ++ia) {
    for (int ib = 0; ib <= 6; ++ib) {
      const float lo = mn + 0.025f * float(ia) * r, hi = mx - 0.025f * float(ib) * r;
      const float inv = float(qmax) / (hi - lo);
      codes_of(x, n, lo, inv, 0.0f, float(qmax), c);
      const double s1 = lane_sum(n, [&](int j) { return b.w[j] * c[j]; });
      const double s2 = lane_sum(n, [&](int j) { return b.w[j] * c[j] * c[j]; });
      const double sxl = lane_sum(n, [&](int j) { return b.wx[j] * c[j]; });
      const double det = s0 * s2 - s1 * s1;
      if (det <= 1e-12 * s0 * s2) continue;
      // Residual of the least-squares fit x ~ d c + m.
      const double e = sxx - (s2 * sx * sx - 2.0 * s1 * sx * sxl + s0 * sxl * sxl) / det;
      if (e < win_err) {
        win_err = e;
        win_lo = lo;
        win_inv = inv;
      }
    }
  }
  if (!std::isfinite(win_err)) return;
  Codes win;
  codes_of(x, n, win_lo, win_inv, 0, qmax, win);
  if (!fit_affine(b, st, win)) return;
  double e = b.error(win);
  refine(b, st, 0, qmax, true, win, e);
  if (e < best_err) {
    best = win;
    best_err = e;
  }
}

}  // namespace halfbyte::quant::ref
