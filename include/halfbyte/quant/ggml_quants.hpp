// Reference quantizers (and decoders) for the ggml block types that halfbyte writes
// into GGUF files but does not compute with directly: q5_0, q5_1 and the 256-weight
// "k-quants" q4_K, q5_K and q6_K. `halfbyte quantize` uses them; the loader reads them by
// re-quantizing to q8_0 (src/model/linear.cpp).
//
// Byte layouts (ggml's block_q5_0, block_q4_K, block_q6_K, little-endian):
//   q5_0  (22 bytes / 32):  [d fp16][qh u32][qs 16]   w = d * (q - 16), q in 0..31;
//         element j < 16 is the low nibble of qs[j], j >= 16 the high nibble of
//         qs[j - 16]; bit j of qh is element j's fifth bit.
//   q5_1  (24 bytes / 32):  [d fp16][m fp16][qh u32][qs 16]   w = d * q + m, q in
//         0..31; codes packed as in q5_0.
//   q4_K (144 bytes / 256): [d fp16][dmin fp16][scales 12][qs 128]; eight sub-blocks
//         of 32 with 6-bit scale sc and min mn: w = d * sc * q - dmin * mn, q in 0..15.
//         Sub-blocks 2i and 2i+1 are the low / high nibbles of qs[32i .. 32i+31].
//         Scales: pairs 0-3 are the low 6 bits of bytes 0-3 (sc) and 4-7 (mn); pairs
//         4-7 keep their low 4 bits in the nibbles of bytes 8-11 (sc low, mn high) and
//         their top 2 bits in the top 2 bits of bytes 0-3 (sc) and 4-7 (mn).
//   q5_K (176 bytes / 256): [d fp16][dmin fp16][scales 12][qh 32][qs 128]; as q4_K
//         with q in 0..31: the low 4 bits where q4_K has them, the fifth bit of
//         element 64i + 32h + l (h = 0, 1) is bit 2i + h of qh[l].
//   q6_K (210 bytes / 256): [ql 128][qh 64][scales int8 16][d fp16]; sixteen
//         sub-blocks of 16: w = d * sc * (q - 32), q in 0..63. Element
//         e = 128h + 32g + l (g = 0..3) takes the low (g < 2) or high (g >= 2) nibble
//         of ql[64h + 32(g % 2) + l] and bits 2g..2g+1 of qh[32h + l].
//
// The quantizers minimise the (optionally importance-weighted) squared error of
// the block as stored: every scale is fitted by least squares for its codes, the
// integer sub-block scales are chosen among their neighbours by exact error, and
// "re-assign codes / re-fit scales" alternates while the error drops.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "halfbyte/core/error.hpp"
#include "halfbyte/core/half.hpp"
#include "halfbyte/quant/quantize.hpp"

namespace halfbyte::quant::ggml {

inline constexpr int kQK = 256;           // weights per k-quant super-block
inline constexpr int kQ5_0Bytes = 22;     // per 32 weights
inline constexpr int kQ5_1Bytes = 24;     // per 32 weights
inline constexpr int kQ4KBytes = 144;     // per 256 weights
inline constexpr int kQ5KBytes = 176;     // per 256 weights
inline constexpr int kQ6KBytes = 210;     // per 256 weights

namespace detail {

inline float f16_round(float v) noexcept { return fp16_to_fp32(fp32_to_fp16(v)); }
inline float f16_load(const uint8_t* p) noexcept {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}
inline void f16_store(uint8_t* p, float v) noexcept {
  const uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}
inline int clampi(int v, int lo, int hi) noexcept { return v < lo ? lo : v > hi ? hi : v; }
inline int round_clamp(double v, int lo, int hi) noexcept {
  if (!(v == v)) return lo < 0 && hi > 0 ? 0 : lo;
  if (v < lo) return lo;
  if (v > hi) return hi;
  return int(std::lround(v));
}

[[noreturn]] inline void overflow(const char* type, const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  throw_invalid(type, ": a block with max |x| = ", amax, " overflows the fp16 scale of the format");
}

inline void check_finite(const char* type, const float* x, int n) {
  for (int j = 0; j < n; ++j)
    if (!std::isfinite(x[j])) throw_invalid(type, ": value ", x[j], " at column ", j, " of a block is not finite");
}

// ---- q4_K pieces -------------------------------------------------------------------------

// Float (a, m), a >= 0, m >= 0, with x ~ a * q - m for q in 0..qmax on one sub-block
// (qmax 15 for q4_K, 31 for q5_K): candidate ranges [lo, hi] (the sub-block's
// [min(x, 0), max] shrunk from either end) give code assignments, each scored by its
// constrained least-squares error.
inline void fit_sub_q4k(const float* x, const float* w, int n, int qmax, float& a, float& m) noexcept {
  float mn = x[0], mx = x[0];
  for (int j = 1; j < n; ++j) {
    mn = std::fmin(mn, x[j]);
    mx = std::fmax(mx, x[j]);
  }
  if (mn > 0.0f) mn = 0.0f;  // the offset -dmin * mn cannot be positive
  if (!(mx > mn)) {
    a = 0.0f;
    m = -mn;
    return;
  }
  double s0 = 0, sx = 0, sxx = 0;
  for (int j = 0; j < n; ++j) {
    const double wj = w ? w[j] : 1.0;
    s0 += wj;
    sx += wj * x[j];
    sxx += wj * double(x[j]) * x[j];
  }
  const float r = mx - mn;
  double best = std::numeric_limits<double>::infinity();
  a = r / float(qmax);
  m = -mn;
  for (int ia = 0; ia <= 6; ++ia) {
    const float lo = std::fmin(mn + 0.025f * float(ia) * r, 0.0f);
    if (ia > 0 && lo == 0.0f && mn == 0.0f) break;  // no room to shrink below 0
    for (int ib = 0; ib <= 6; ++ib) {
      const float hi = mx - 0.025f * float(ib) * r;
      if (!(hi > lo)) continue;
      const float inv = float(qmax) / (hi - lo);
      double s1 = 0, s2 = 0, sxl = 0;
      for (int j = 0; j < n; ++j) {
        const int c = ref::clamp_code((x[j] - lo) * inv, 0, qmax);
        const double wj = w ? w[j] : 1.0;
        s1 += wj * c;
        s2 += wj * double(c) * c;
        sxl += wj * x[j] * c;
      }
      if (s2 <= 0.0) continue;
      double A, B;  // x ~ A c + B, B <= 0
      const double det = s0 * s2 - s1 * s1;
      if (det > 1e-12 * s0 * s2) {
        A = (s0 * sxl - s1 * sx) / det;
        B = (s2 * sx - s1 * sxl) / det;
      } else {
        A = sxl / s2;
        B = 0.0;
      }
      if (B > 0.0) {
        B = 0.0;
        A = sxl / s2;
      }
      if (A < 0.0) continue;
      const double e = sxx - 2 * A * sxl - 2 * B * sx + A * A * s2 + 2 * A * B * s1 + B * B * s0;
      if (e < best) {
        best = e;
        a = float(A);
        m = float(-B);
      }
    }
  }
}

// Codes (0..qmax) of one q4_K / q5_K sub-block for stored (d, sc, dmin, mn); returns its error.
inline double assign_q4k(const float* x, const float* w, float d, int sc, float dmin, int mn, int qmax,
                         uint8_t* q) noexcept {
  const float ds = d * float(sc), ms = dmin * float(mn);
  const float inv = ds != 0.0f ? 1.0f / ds : 0.0f;
  double e = 0.0;
  for (int j = 0; j < 32; ++j) {
    const int c = ds != 0.0f ? ref::clamp_code((x[j] + ms) * inv, 0, qmax) : 0;
    q[j] = uint8_t(c);
    const double r = double(x[j]) - double(ds * float(c) - ms);
    e += (w ? w[j] : 1.0) * r * r;
  }
  return e;
}

struct StateQ4K {  // q4_K and q5_K
  int qmax = 15;
  float d = 0.0f, dmin = 0.0f;
  int sc[8] = {}, mn[8] = {};
  uint8_t q[kQK] = {};
  double err = std::numeric_limits<double>::infinity();
};

inline double assign_all_q4k(const float* x, const float* w, StateQ4K& s) noexcept {
  double e = 0.0;
  for (int b = 0; b < 8; ++b)
    e += assign_q4k(x + 32 * b, w ? w + 32 * b : nullptr, s.d, s.sc[b], s.dmin, s.mn[b], s.qmax, s.q + 32 * b);
  return s.err = e;
}

// ---- q6_K pieces -------------------------------------------------------------------------

inline double assign_q6k(const float* x, const float* w, float d, int sc, int8_t* q) noexcept {
  const float ds = d * float(sc);
  const float inv = ds != 0.0f ? 1.0f / ds : 0.0f;
  double e = 0.0;
  for (int j = 0; j < 16; ++j) {
    const int c = ds != 0.0f ? ref::clamp_code(x[j] * inv, -32, 31) : 0;
    q[j] = int8_t(c);
    const double r = double(x[j]) - double(ds * float(c));
    e += (w ? w[j] : 1.0) * r * r;
  }
  return e;
}

struct StateQ6K {
  float d = 0.0f;
  int sc[16] = {};
  int8_t q[kQK] = {};
  double err = std::numeric_limits<double>::infinity();
};

inline double assign_all_q6k(const float* x, const float* w, StateQ6K& s) noexcept {
  double e = 0.0;
  for (int b = 0; b < 16; ++b) e += assign_q6k(x + 16 * b, w ? w + 16 * b : nullptr, s.d, s.sc[b], s.q + 16 * b);
  return s.err = e;
}

}  // namespace detail

// ---- q5_0 ----------------------------------------------------------------------------------

inline void dequantize_block_q5_0(const uint8_t* b, float* y) noexcept {
  const float d = detail::f16_load(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | int((qh >> j) & 1u) << 4;
    const int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1u) << 4;
    y[j] = d * float(lo - 16);
    y[j + 16] = d * float(hi - 16);
  }
}

// One block of 32: ggml's round-to-nearest (the extreme value maps to -16) as the
// incumbent, then the error-minimising scale search of quantize.hpp over codes
// -16..15. `w`: per-column importance of these 32 columns, or null.
inline void quantize_block_q5_0(const float* x, const float* w, uint8_t* dst) {
  detail::check_finite("q5_0", x, 32);
  ref::Codes q;
  float amax = 0.0f, vmax = 0.0f;
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      vmax = x[j];
    }
  const float d = vmax / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  q.d = detail::f16_round(d);
  for (int j = 0; j < 32; ++j) q.c[j] = detail::clampi(int(ref::sat(x[j] * id + 16.5f, 0.0f, 31.5f, 16.5f)), 0, 31) - 16;
  double err = ref::block_error(x, w, 32, q);
  if (!std::isfinite(q.d)) err = std::numeric_limits<double>::infinity();
  ref::search_sym(x, w, 32, ScaleType::F16, -16, 15, q, err);
  if (!std::isfinite(q.d) || !std::isfinite(err)) detail::overflow("q5_0", x, 32);
  detail::f16_store(dst, q.d);
  uint32_t qh = 0;
  uint8_t* qs = dst + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = q.c[j] + 16, hi = q.c[j + 16] + 16;
    qs[j] = uint8_t((lo & 0x0F) | (hi & 0x0F) << 4);
    qh |= uint32_t(lo >> 4) << j | uint32_t(hi >> 4) << (j + 16);
  }
  std::memcpy(dst + 2, &qh, 4);
}

// ---- q5_1 ----------------------------------------------------------------------------------

inline void dequantize_block_q5_1(const uint8_t* b, float* y) noexcept {
  const float d = detail::f16_load(b), m = detail::f16_load(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float((qs[j] & 0x0F) | int((qh >> j) & 1u) << 4) + m;
    y[j + 16] = d * float((qs[j] >> 4) | int((qh >> (j + 16)) & 1u) << 4) + m;
  }
}

// One block of 32: ggml's round-to-nearest ([min, max] to [0, 31]) as the incumbent,
// then the error-minimising (d, m) search of quantize.hpp over codes 0..31.
inline void quantize_block_q5_1(const float* x, const float* w, uint8_t* dst) {
  detail::check_finite("q5_1", x, 32);
  ref::Codes q;
  float mn = x[0], mx = x[0];
  for (int j = 1; j < 32; ++j) {
    mn = std::fmin(mn, x[j]);
    mx = std::fmax(mx, x[j]);
  }
  const float d = (mx - mn) / 31.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  q.d = detail::f16_round(d);
  q.m = detail::f16_round(mn);
  for (int j = 0; j < 32; ++j) q.c[j] = detail::clampi(int(ref::sat((x[j] - mn) * id + 0.5f, 0.0f, 31.5f, 0.5f)), 0, 31);
  double err = ref::block_error(x, w, 32, q);
  if (!std::isfinite(q.d) || !std::isfinite(q.m)) err = std::numeric_limits<double>::infinity();
  ref::search_affine(x, w, 32, ScaleType::F16, q, err, 31);
  if (!std::isfinite(q.d) || !std::isfinite(q.m) || !std::isfinite(err)) detail::overflow("q5_1", x, 32);
  detail::f16_store(dst, q.d);
  detail::f16_store(dst + 2, q.m);
  uint32_t qh = 0;
  uint8_t* qs = dst + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = q.c[j], hi = q.c[j + 16];
    qs[j] = uint8_t((lo & 0x0F) | (hi & 0x0F) << 4);
    qh |= uint32_t(lo >> 4) << j | uint32_t(hi >> 4) << (j + 16);
  }
  std::memcpy(dst + 4, &qh, 4);
}

// ---- q4_K ----------------------------------------------------------------------------------

inline void unpack_scale_min_q4k(const uint8_t* s, int j, int* sc, int* mn) noexcept {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0x0F) | (s[j - 4] >> 6) << 4;
    *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

inline void dequantize_block_q4_k(const uint8_t* b, float* y) noexcept {
  const float d = detail::f16_load(b), dmin = detail::f16_load(b + 2);
  for (int s = 0; s < 8; ++s) {
    int sc, mn;
    unpack_scale_min_q4k(b + 4, s, &sc, &mn);
    const float ds = d * float(sc), ms = dmin * float(mn);
    const uint8_t* q = b + 16 + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    for (int l = 0; l < 32; ++l) y[32 * s + l] = ds * float((q[l] >> shift) & 0x0F) - ms;
  }
}

namespace detail {

// The search of one q4_K (qmax 15) or q5_K (qmax 31) super-block: sub-block (a, m)
// fits, the two fp16 super-scales, then integer (sc, mn) refits while the error drops.
inline StateQ4K search_q45k(const char* type, const float* x, const float* w, int qmax) {
  check_finite(type, x, kQK);
  float a[8], m[8], amax = 0.0f, mmax = 0.0f;
  for (int b = 0; b < 8; ++b) {
    fit_sub_q4k(x + 32 * b, w ? w + 32 * b : nullptr, 32, qmax, a[b], m[b]);
    amax = std::fmax(amax, a[b]);
    mmax = std::fmax(mmax, m[b]);
  }
  StateQ4K cur;
  cur.qmax = qmax;
  cur.d = f16_round(amax / 63.0f);
  cur.dmin = f16_round(mmax / 63.0f);
  if (!std::isfinite(cur.d) || !std::isfinite(cur.dmin)) overflow(type, x, kQK);
  for (int b = 0; b < 8; ++b) {
    cur.sc[b] = cur.d > 0.0f ? round_clamp(a[b] / cur.d, 0, 63) : 0;
    cur.mn[b] = cur.dmin > 0.0f ? round_clamp(m[b] / cur.dmin, 0, 63) : 0;
  }
  assign_all_q4k(x, w, cur);
  StateQ4K best = cur;
  for (int it = 0; it < 6; ++it) {
    // Each sub-block: least-squares (A, B) for its codes, then the neighbouring
    // integer (sc, mn) with the smallest exact error.
    for (int b = 0; b < 8; ++b) {
      const float* xb = x + 32 * b;
      const float* wb = w ? w + 32 * b : nullptr;
      double s0 = 0, s1 = 0, s2 = 0, sx = 0, sxl = 0;
      for (int j = 0; j < 32; ++j) {
        const double wj = wb ? wb[j] : 1.0, c = cur.q[32 * b + j];
        s0 += wj;
        s1 += wj * c;
        s2 += wj * c * c;
        sx += wj * xb[j];
        sxl += wj * xb[j] * c;
      }
      const double det = s0 * s2 - s1 * s1;
      double A = s2 > 0 ? sxl / s2 : 0.0, B = 0.0;  // x ~ A c - B
      if (det > 1e-12 * s0 * s2) {
        A = (s0 * sxl - s1 * sx) / det;
        B = -(s2 * sx - s1 * sxl) / det;
      }
      const double fs = cur.d > 0 ? A / cur.d : 0.0, fm = cur.dmin > 0 ? B / cur.dmin : 0.0;
      const int sc0 = round_clamp(std::floor(fs), 0, 63), mn0 = round_clamp(std::floor(fm), 0, 63);
      uint8_t qb[32];
      double eb = assign_q4k(xb, wb, cur.d, cur.sc[b], cur.dmin, cur.mn[b], qmax, qb);
      int bsc = cur.sc[b], bmn = cur.mn[b];
      for (int ds = 0; ds <= 1; ++ds)
        for (int dm = 0; dm <= 1; ++dm) {
          const int sc = clampi(sc0 + ds, 0, 63), mn = clampi(mn0 + dm, 0, 63);
          uint8_t qt[32];
          const double e = assign_q4k(xb, wb, cur.d, sc, cur.dmin, mn, qmax, qt);
          if (e < eb) {
            eb = e;
            bsc = sc;
            bmn = mn;
          }
        }
      cur.sc[b] = bsc;
      cur.mn[b] = bmn;
      assign_q4k(xb, wb, cur.d, bsc, cur.dmin, bmn, qmax, cur.q + 32 * b);
    }
    assign_all_q4k(x, w, cur);
    if (cur.err < best.err) best = cur;
    // Then the two super-block scales by least squares: x ~ d * (sc q) - dmin * mn.
    double uu = 0, uv = 0, vv = 0, xu = 0, xv = 0;
    for (int j = 0; j < kQK; ++j) {
      const double wj = w ? w[j] : 1.0, u = double(cur.sc[j / 32]) * cur.q[j], v = -double(cur.mn[j / 32]);
      uu += wj * u * u;
      uv += wj * u * v;
      vv += wj * v * v;
      xu += wj * x[j] * u;
      xv += wj * x[j] * v;
    }
    const double det = uu * vv - uv * uv;
    float nd = cur.d, ndmin = cur.dmin;
    if (vv > 0 && det > 1e-12 * uu * vv) {
      nd = float((vv * xu - uv * xv) / det);
      ndmin = float((uu * xv - uv * xu) / det);
    } else if (uu > 0) {
      nd = float(xu / uu);
    }
    if (!(nd > 0.0f) || !(ndmin >= 0.0f)) break;
    cur.d = f16_round(nd);
    cur.dmin = f16_round(ndmin);
    if (!std::isfinite(cur.d) || !std::isfinite(cur.dmin)) break;
    assign_all_q4k(x, w, cur);
    if (cur.err < best.err) best = cur;
    else if (it > 1) break;
  }
  return best;
}

// d, dmin and the 12 bytes of 6-bit scales and mins (the first 16 bytes of q4_K and q5_K).
inline void pack_head_q45k(const StateQ4K& s, uint8_t* dst) noexcept {
  f16_store(dst, s.d);
  f16_store(dst + 2, s.dmin);
  uint8_t* sc = dst + 4;
  for (int j = 0; j < 4; ++j) {
    sc[j] = uint8_t(s.sc[j] | (s.sc[j + 4] >> 4) << 6);
    sc[j + 4] = uint8_t(s.mn[j] | (s.mn[j + 4] >> 4) << 6);
    sc[j + 8] = uint8_t((s.sc[j + 4] & 0x0F) | (s.mn[j + 4] & 0x0F) << 4);
  }
}

}  // namespace detail

// One super-block of 256. `w`: per-column importance of these 256 columns, or null.
inline void quantize_block_q4_k(const float* x, const float* w, uint8_t* dst) {
  const detail::StateQ4K best = detail::search_q45k("q4_K", x, w, 15);
  detail::pack_head_q45k(best, dst);
  uint8_t* qs = dst + 16;
  for (int i = 0; i < 4; ++i)
    for (int l = 0; l < 32; ++l) qs[32 * i + l] = uint8_t(best.q[64 * i + l] | best.q[64 * i + 32 + l] << 4);
}

// ---- q5_K ----------------------------------------------------------------------------------

inline void dequantize_block_q5_k(const uint8_t* b, float* y) noexcept {
  const float d = detail::f16_load(b), dmin = detail::f16_load(b + 2);
  const uint8_t* qh = b + 16;
  for (int s = 0; s < 8; ++s) {
    int sc, mn;
    unpack_scale_min_q4k(b + 4, s, &sc, &mn);
    const float ds = d * float(sc), ms = dmin * float(mn);
    const uint8_t* q = b + 48 + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    for (int l = 0; l < 32; ++l) y[32 * s + l] = ds * float(((q[l] >> shift) & 0x0F) | ((qh[l] >> s) & 1) << 4) - ms;
  }
}

// One super-block of 256. `w`: per-column importance of these 256 columns, or null.
inline void quantize_block_q5_k(const float* x, const float* w, uint8_t* dst) {
  const detail::StateQ4K best = detail::search_q45k("q5_K", x, w, 31);
  detail::pack_head_q45k(best, dst);
  uint8_t* qh = dst + 16;
  uint8_t* qs = dst + 48;
  std::memset(qh, 0, 32);
  for (int i = 0; i < 4; ++i)
    for (int l = 0; l < 32; ++l) {
      const int lo = best.q[64 * i + l], hi = best.q[64 * i + 32 + l];
      qs[32 * i + l] = uint8_t((lo & 0x0F) | (hi & 0x0F) << 4);
      qh[l] |= uint8_t((lo >> 4) << (2 * i) | (hi >> 4) << (2 * i + 1));
    }
}


// ---- q6_K ----------------------------------------------------------------------------------

inline void dequantize_block_q6_k(const uint8_t* b, float* y) noexcept {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = detail::f16_load(b + 208);
  for (int e = 0; e < kQK; ++e) {
    const int h = e / 128, g = (e / 32) % 4, l = e % 32;
    const int lo = (ql[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 0x0F;
    const int hi = (qh[32 * h + l] >> (2 * g)) & 3;
    y[e] = d * float(sc[e / 16]) * float((lo | hi << 4) - 32);
  }
}

// One super-block of 256. `w`: per-column importance of these 256 columns, or null.
inline void quantize_block_q6_k(const float* x, const float* w, uint8_t* dst) {
  using namespace detail;
  check_finite("q6_K", x, kQK);
  // Float scale of each sub-block of 16 by the symmetric search over codes -32..31.
  float a[16], amax = 0.0f, vmax = 0.0f;
  for (int b = 0; b < 16; ++b) {
    const float* xb = x + 16 * b;
    const float* wb = w ? w + 16 * b : nullptr;
    ref::Codes c;
    double e = std::numeric_limits<double>::infinity();
    ref::search_sym(xb, wb, 16, ScaleType::F16, -32, 31, c, e);
    a[b] = std::isfinite(e) ? c.d : 0.0f;
    if (!std::isfinite(e)) {  // all zero, or the search found nothing better than nothing
      float bmax = 0.0f;
      for (int j = 0; j < 16; ++j) bmax = std::fmax(bmax, std::fabs(xb[j]));
      a[b] = bmax / 31.0f;
    }
    if (std::fabs(a[b]) > amax) {
      amax = std::fabs(a[b]);
      vmax = a[b];
    }
  }
  StateQ6K best;
  if (amax == 0.0f) {
    best.d = 0.0f;
    assign_all_q6k(x, w, best);
  }
  // Starting points: the largest scale mapped to -128 (ggml's choice) or to 127,
  // and the latter rounded up to the next fp16 so no scale clips (matters where d
  // is an fp16 subnormal and rounding moves it by a large fraction).
  uint16_t up = fp32_to_fp16(amax / 127.0f);
  if (fp16_to_fp32(up) * 127.0f < amax && (up & 0x7FFF) < 0x7BFF) ++up;
  for (int start = 0; start < 3 && amax > 0.0f; ++start) {
    StateQ6K cur;
    cur.d = start == 2 ? fp16_to_fp32(up) : f16_round(start == 0 ? vmax / -128.0f : amax / 127.0f);
    if (!std::isfinite(cur.d)) overflow("q6_K", x, kQK);
    if (cur.d == 0.0f) continue;
    for (int b = 0; b < 16; ++b) cur.sc[b] = round_clamp(a[b] / cur.d, -128, 127);
    assign_all_q6k(x, w, cur);
    if (cur.err < best.err) best = cur;
    for (int it = 0; it < 6; ++it) {
      for (int b = 0; b < 16; ++b) {
        const float* xb = x + 16 * b;
        const float* wb = w ? w + 16 * b : nullptr;
        double sxl = 0, sll = 0;
        for (int j = 0; j < 16; ++j) {
          const double wj = wb ? wb[j] : 1.0, c = cur.q[16 * b + j];
          sxl += wj * xb[j] * c;
          sll += wj * c * c;
        }
        if (sll <= 0) continue;
        const int s0 = round_clamp(std::floor(sxl / sll / cur.d), -128, 127);
        int8_t qb[16];
        double eb = assign_q6k(xb, wb, cur.d, cur.sc[b], qb);
        int bsc = cur.sc[b];
        for (int k = 0; k <= 1; ++k) {
          const int sc = clampi(s0 + k, -128, 127);
          const double e = assign_q6k(xb, wb, cur.d, sc, qb);
          if (e < eb) {
            eb = e;
            bsc = sc;
          }
        }
        cur.sc[b] = bsc;
      }
      assign_all_q6k(x, w, cur);
      if (cur.err < best.err) best = cur;
      double uu = 0, xu = 0;  // x ~ d * (sc q)
      for (int j = 0; j < kQK; ++j) {
        const double wj = w ? w[j] : 1.0, u = double(cur.sc[j / 16]) * cur.q[j];
        uu += wj * u * u;
        xu += wj * x[j] * u;
      }
      if (!(uu > 0)) break;
      const float nd = f16_round(float(xu / uu));
      if (!(nd > 0.0f) || !std::isfinite(nd)) break;
      cur.d = nd;
      assign_all_q6k(x, w, cur);
      if (cur.err < best.err) best = cur;
      else if (it > 1) break;
    }
  }
  std::memset(dst, 0, size_t(kQ6KBytes));
  uint8_t* ql = dst;
  uint8_t* qh = dst + 128;
  for (int e = 0; e < kQK; ++e) {
    const int h = e / 128, g = (e / 32) % 4, l = e % 32;
    const int u = best.q[e] + 32;
    ql[64 * h + 32 * (g % 2) + l] |= uint8_t((u & 0x0F) << (4 * (g / 2)));
    qh[32 * h + l] |= uint8_t((u >> 4) << (2 * g));
  }
  for (int b = 0; b < 16; ++b) dst[192 + b] = uint8_t(int8_t(best.sc[b]));
  f16_store(dst + 208, best.d);
}

}  // namespace halfbyte::quant::ggml
