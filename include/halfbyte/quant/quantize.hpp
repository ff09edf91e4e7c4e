// Reference (scalar, header-only) quantize and dequantize for every block format.
//
// Two methods:
//   Method::RTN   round to nearest from the block's extreme value, bit-for-bit the
//                 reference quantizers of ggml (quantize_row_q4_0_ref & co.).
//   Method::Auto  searches the scale (and min) that minimises the squared error of
//                 the block *as stored* (fp16/bf16-rounded scale), optionally
//                 weighted by per-column importance. The RTN result is one of its
//                 candidates, so its error is never larger than RTN's.
//
// These functions are the oracle for the SIMD kernels, and they quantize float
// weights at load (an encoder's dtype="q8_0"); the search is in search.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "halfbyte/core/error.hpp"
#include "halfbyte/core/half.hpp"
#include "halfbyte/quant/blocks.hpp"
#include "halfbyte/quant/format.hpp"
#include "halfbyte/quant/search.hpp"

namespace halfbyte::quant {

enum class Method : uint8_t { Auto, RTN };

struct QuantizeOptions {
  Method method = Method::Auto;
  // Optional per-column importance (length = row length, finite, >= 0): the search
  // minimises sum_j importance[j] * (x[j] - xhat[j])^2. Null means all ones.
  const float* importance = nullptr;
};

namespace ref {

// ---- round to nearest (ggml's reference arithmetic) --------------------------------------
// Inputs are finite here (quantize_block checks), so plain comparisons stand in for
// fmin/fmax (fmax_finite, fmin_finite) and round_away for roundf, with equal results.

// roundf for |v| < 2^31: to nearest, halves away from zero (t and v - t are exact).
inline float round_away(float v) noexcept {
  const float t = float(int(v)), f = v - t;
  return f >= 0.5f ? t + 1.0f : f <= -0.5f ? t - 1.0f : t;
}

// q4_0 / int4 symmetric: the extreme value maps to -8.
inline void rtn_sym4(const float* x, int n, ScaleType st, Codes& q) noexcept {
  float amax = 0.0f, vmax = 0.0f;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      vmax = x[j];
    }
  const float d = vmax / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  q.d = round_scale(st, d);
  q.m = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float v = sat(x[j] * id + 8.5f, 0.0f, 16.5f, 8.5f);  // guards 1/d overflow
    const int nib = int(static_cast<int8_t>(v));
    q.c[j] = (nib < 15 ? nib : 15) - 8;
  }
}

// q8_0: amax maps to 127, round half away from zero.
inline void rtn_q8(const float* x, int n, Codes& q) noexcept {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = fmax_finite(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  q.d = round_scale(ScaleType::F16, d);
  q.m = 0.0f;
  for (int j = 0; j < n; ++j) q.c[j] = int(round_away(sat(x[j] * id, -127.0f, 127.0f, 0.0f)));
}

// q4_1 / int4 affine: [min, max] maps to [0, 15].
inline void rtn_affine4(const float* x, int n, ScaleType st, Codes& q) noexcept {
  float mn = std::numeric_limits<float>::max(), mx = -std::numeric_limits<float>::max();
  for (int j = 0; j < n; ++j) {
    mn = fmin_finite(mn, x[j]);
    mx = fmax_finite(mx, x[j]);
  }
  const float d = (mx - mn) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  q.d = round_scale(st, d);
  q.m = round_scale(st, mn);
  for (int j = 0; j < n; ++j) {
    const float v = sat((x[j] - mn) * id + 0.5f, 0.0f, 15.5f, 0.5f);
    const int c = int(static_cast<int8_t>(v));
    q.c[j] = c < 15 ? c : 15;
  }
}

// Quantizes one block of f.block_size() floats to codes (no packing). Throws if
// the block's scale or min cannot be stored.
inline void quantize_codes(const Format& f, const float* x, const float* w, Method method, Codes& q) {
  const int n = f.block_size();
  const ScaleType st = scale_type(f);
  const bool sym8 = f.kind == Kind::Q8_0;
  if (f.has_min())
    rtn_affine4(x, n, st, q);
  else if (sym8)
    rtn_q8(x, n, q);
  else
    rtn_sym4(x, n, st, q);
  double err = block_error(x, w, n, q);
  if (!std::isfinite(q.d) || !std::isfinite(q.m)) err = std::numeric_limits<double>::infinity();
  if (method == Method::Auto) {
    if (f.has_min())
      search_affine(x, w, n, st, q, err);
    else
      search_sym(x, w, n, st, sym8 ? -127 : -8, sym8 ? 127 : 7, q, err);
  }
  if (!std::isfinite(q.d) || !std::isfinite(q.m) || !std::isfinite(err)) {
    float amax = 0.0f;
    for (int j = 0; j < n; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    throw_invalid(f.name(), ": a block with max |x| = ", amax, " overflows the ",
                  st == ScaleType::F16 ? "fp16" : "bf16", " scale of the format");
  }
}

// Packs codes into the block's bytes.
inline void pack_block(const Format& f, const Codes& q, uint8_t* dst) noexcept {
  const int n = f.block_size();
  const ScaleType st = scale_type(f);
  const uint16_t d = store_scale(st, q.d), m = store_scale(st, q.m);
  switch (f.kind) {
    case Kind::Q4_0: {
      auto* b = reinterpret_cast<BlockQ4_0*>(dst);  // layout-compatible, see blocks.hpp
      std::memcpy(&b->d, &d, 2);
      for (int j = 0; j < 16; ++j) b->qs[j] = uint8_t((q.c[j] + 8) | ((q.c[j + 16] + 8) << 4));
      break;
    }
    case Kind::Q4_1: {
      auto* b = reinterpret_cast<BlockQ4_1*>(dst);
      std::memcpy(&b->d, &d, 2);
      std::memcpy(&b->m, &m, 2);
      for (int j = 0; j < 16; ++j) b->qs[j] = uint8_t(q.c[j] | (q.c[j + 16] << 4));
      break;
    }
    case Kind::Q8_0: {
      std::memcpy(dst, &d, 2);
      for (int j = 0; j < 32; ++j) dst[2 + j] = uint8_t(int8_t(q.c[j]));
      break;
    }
    case Kind::Int4: {
      std::memcpy(dst, &d, 2);
      uint8_t* qs = dst + 2;
      int bias = 8;
      if (f.affine) {
        std::memcpy(dst + 2, &m, 2);
        qs += 2;
        bias = 0;
      }
      for (int j = 0; j < n / 2; ++j)
        qs[j] = uint8_t((q.c[2 * j] + bias) | ((q.c[2 * j + 1] + bias) << 4));
      break;
    }
  }
}

inline void dequantize_block(const Format& f, const uint8_t* src, float* y) noexcept {
  const ScaleType st = scale_type(f);
  uint16_t dbits, mbits = 0;
  std::memcpy(&dbits, src, 2);
  const float d = load_scale(st, dbits);
  switch (f.kind) {
    case Kind::Q4_0:
      for (int j = 0; j < 16; ++j) {
        y[j] = float((src[2 + j] & 0x0F) - 8) * d;
        y[j + 16] = float((src[2 + j] >> 4) - 8) * d;
      }
      break;
    case Kind::Q4_1: {
      std::memcpy(&mbits, src + 2, 2);
      const float m = load_scale(st, mbits);
      for (int j = 0; j < 16; ++j) {
        y[j] = float(src[4 + j] & 0x0F) * d + m;
        y[j + 16] = float(src[4 + j] >> 4) * d + m;
      }
      break;
    }
    case Kind::Q8_0:
      for (int j = 0; j < 32; ++j) y[j] = float(int8_t(src[2 + j])) * d;
      break;
    case Kind::Int4: {
      const int n = f.block_size();
      if (f.affine) {
        std::memcpy(&mbits, src + 2, 2);
        const float m = load_scale(st, mbits);
        const uint8_t* qs = src + 4;
        for (int j = 0; j < n / 2; ++j) {
          y[2 * j] = float(qs[j] & 0x0F) * d + m;
          y[2 * j + 1] = float(qs[j] >> 4) * d + m;
        }
      } else {
        const uint8_t* qs = src + 2;
        for (int j = 0; j < n / 2; ++j) {
          y[2 * j] = float((qs[j] & 0x0F) - 8) * d;
          y[2 * j + 1] = float((qs[j] >> 4) - 8) * d;
        }
      }
      break;
    }
  }
}

// Checks a block's values (and weights) and quantizes it into dst. `offset` is the
// block's first column, for error messages.
inline void quantize_block(const Format& f, const float* x, const float* w, Method method,
                           int64_t offset, uint8_t* dst) {
  const int n = f.block_size();
  for (int j = 0; j < n; ++j) {
    if (!std::isfinite(x[j]))
      throw_invalid("quantize: x[", offset + j, "] is ", x[j], " (values must be finite)");
    if (w && !(std::isfinite(w[j]) && w[j] >= 0.0f))
      throw_invalid("quantize: importance[", offset + j, "] is ", w[j], " (must be finite and >= 0)");
  }
  if (w) {  // a block whose weights are all zero is fitted unweighted
    bool any = false;
    for (int j = 0; j < n; ++j) any = any || w[j] > 0.0f;
    if (!any) w = nullptr;
  }
  Codes q;
  quantize_codes(f, x, w, method, q);
  pack_block(f, q, dst);
}

}  // namespace ref

// Quantizes one row of n values (n a multiple of the block size) into
// row_bytes(f, n) bytes at dst. T is float, f16 or bf16 (16-bit input is converted
// exactly). Throws Error(InvalidArgument) on a bad length, a non-finite value, or a
// value too large for the format's scale.
template <class T>
void quantize_row(const Format& f, const T* x, int64_t n, void* dst, const QuantizeOptions& opts = {}) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, f16> || std::is_same_v<T, bf16>,
                "quantize_row takes float, f16 or bf16 input");
  row_bytes(f, n);
  const int bs = f.block_size();
  auto* out = static_cast<uint8_t*>(dst);
  float tmp[kMaxBlock];
  for (int64_t b = 0; b < n / bs; ++b) {
    const float* xb;
    if constexpr (std::is_same_v<T, float>) {
      xb = x + b * bs;
    } else {
      for (int j = 0; j < bs; ++j) tmp[j] = to_float(x[b * bs + j]);
      xb = tmp;
    }
    const float* wb = opts.importance ? opts.importance + b * bs : nullptr;
    ref::quantize_block(f, xb, wb, opts.method, b * bs, out + size_t(b) * f.block_bytes());
  }
}

// Dequantizes one row of n values (n a multiple of the block size).
inline void dequantize_row(const Format& f, const void* src, int64_t n, float* y) {
  row_bytes(f, n);
  const int bs = f.block_size();
  const auto* in = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n / bs; ++b)
    ref::dequantize_block(f, in + size_t(b) * f.block_bytes(), y + b * bs);
}

}  // namespace halfbyte::quant
