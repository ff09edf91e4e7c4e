// Scalar kernels: portable C++ that defines the results every ISA must give (see
// kernel_table.hpp). Also the fallback on CPUs without a SIMD kernel set.
#include <cmath>

#include "halfbyte/quant/quantize.hpp"
#include "kernel_table.hpp"
#include "packed_io.hpp"

namespace halfbyte::kernels::scalar {
namespace {

// A block with a NaN or an infinity: codes 0, d (and ds, c) NaN, so that every
// output it reaches is NaN, on every ISA (kernel_table.hpp).
bool non_finite(const float* xb) {
  bool bad = false;
  for (int k = 0; k < 32; ++k) bad = bad || !std::isfinite(xb[k]);
  return bad;
}

void quantize_act(const float* x, int64_t K, int8_t* qs, ActBlock* meta) {
  for (int64_t b = 0; b < K / 32; ++b) {
    const float* xb = x + b * 32;
    if (non_finite(xb)) {
      for (int k = 0; k < 32; ++k) qs[b * 32 + k] = 0;
      meta[b] = ActBlock{NAN, 0, NAN};
      continue;
    }
    float amax = 0.0f;
    for (int k = 0; k < 32; ++k) amax = std::fmax(amax, std::fabs(xb[k]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    int32_t s = 0;
    for (int k = 0; k < 32; ++k) {
      const int q = int(std::nearbyint(xb[k] * id));
      qs[b * 32 + k] = int8_t(q);
      s += q;
    }
    meta[b] = ActBlock{d, s, d * float(s)};
  }
}

// Activation code k of a block: int8 in k order, int16 in the int16 path's order.
inline int32_t act_code(const int8_t* q, int k) { return q[k]; }
inline int32_t act_code(const int16_t* q, int k) { return q[act16_index(k)]; }

// The integer paths (ActQ8: int8 activations, ActQ16: int16), one arithmetic;
// Asym: activations from quantize_act_asym (x = d * q + c, q unsigned), whose offset
// adds c times the weights' sum: block by block (s = 0), or for a row with one
// offset (s = 1) once after the last block (the sum taken block by block with the
// weights' scales).
template <Family F, class Act, bool Asym = false>
void gemm_int(const Packed& w, const Act& x, const GemmTask& t) {
  const bool is4 = F != kQ8;
  for (int64_t g = t.g0; g < t.g1; ++g) {
    const uint8_t* grp = w.group(g);
    for (int r = 0; r < 16; ++r) {
      const int64_t n = g * 16 + r;
      if (n >= w.rows) break;
      for (int64_t m = t.m0; m < t.m1; ++m) {
        const auto* xq = x.qs + m * x.K;
        const ActBlock* xm = x.meta + m * (x.K / 32);
        float acc = 0.0f, wsum_scaled = 0.0f;
        for (int64_t s = 0; s < w.scale_groups; ++s) {
          const uint8_t* sg = grp + size_t(s) * w.scale_group_bytes;
          const float dw = load_scale(sg, r, w.bf16);
          const float mw = F == kAffine4 ? load_scale(sg + 32, r, w.bf16) : 0.0f;
          for (int b = 0; b < w.bps; ++b) {
            const uint8_t* sub = sg + w.header_bytes + size_t(b) * w.sub_block_bytes;
            const int64_t kb = s * w.bps + b;
            int32_t isum = 0, wsum = 0;
            for (int k = 0; k < 32; ++k) {
              const int32_t a = Asym ? int32_t(uint8_t(xq[kb * 32 + k])) : act_code(xq + kb * 32, k);
              const int32_t code = code_at(sub, is4, r, k), wk = code - (F == kSym4 ? 8 : 0);
              isum += (Asym ? wk : code) * a;  // (the int paths remove the 4-bit offset below)
              wsum += wk;
            }
            if (F == kSym4 && !Asym) isum -= 8 * xm[kb].s;
            acc = std::fma(float(isum), dw * xm[kb].d, acc);
            if (F == kAffine4) acc = std::fma(mw, xm[kb].ds, acc);
            if (Asym && xm[kb].s == 0) acc = std::fma(dw * float(wsum), xm[kb].c, acc);
            if (Asym) wsum_scaled = std::fma(dw, float(wsum), wsum_scaled);
          }
        }
        if (Asym && xm[0].s == 1) acc = std::fma(wsum_scaled, xm[0].c, acc);
        t.y[m * t.ldy + n] = acc;
      }
    }
  }
}

template <Family F>
void gemm_float(const Packed& w, const ActF32& x, const GemmTask& t) {
  const bool is4 = F != kQ8;
  const int bias = F == kSym4 ? 8 : 0;
  for (int64_t g = t.g0; g < t.g1; ++g) {
    const uint8_t* grp = w.group(g);
    for (int r = 0; r < 16; ++r) {
      const int64_t n = g * 16 + r;
      if (n >= w.rows) break;
      for (int64_t m = t.m0; m < t.m1; ++m) {
        const float* xr = x.x + m * x.ldx;
        const float* xs = x.xsum + m * (w.cols / 32);
        float acc = 0.0f;
        for (int64_t s = 0; s < w.scale_groups; ++s) {
          const uint8_t* sg = grp + size_t(s) * w.scale_group_bytes;
          const float dw = load_scale(sg, r, w.bf16);
          const float mw = F == kAffine4 ? load_scale(sg + 32, r, w.bf16) : 0.0f;
          for (int b = 0; b < w.bps; ++b) {
            const uint8_t* sub = sg + w.header_bytes + size_t(b) * w.sub_block_bytes;
            const int64_t kb = s * w.bps + b;
            const float* xb = xr + kb * 32;
            float tsum = 0.0f;
            for (int k = 0; k < 32; ++k) tsum = std::fma(float(code_at(sub, is4, r, k) - bias), xb[k], tsum);
            acc = std::fma(tsum, dw, acc);
            if (F == kAffine4) acc = std::fma(mw, xs[kb], acc);
          }
        }
        t.y[m * t.ldy + n] = acc;
      }
    }
  }
}

void dequantize_row(const quant::Format& f, const void* src, int64_t n, float* y) {
  quant::dequantize_row(f, src, n, y);
}

}  // namespace

void quantize_act16(const float* x, int64_t K, int16_t* qs, ActBlock* meta) {
  for (int64_t b = 0; b < K / 32; ++b) {
    const float* xb = x + b * 32;
    if (non_finite(xb)) {
      for (int k = 0; k < 32; ++k) qs[b * 32 + k] = 0;
      meta[b] = ActBlock{NAN, 0, NAN};
      continue;
    }
    float amax = 0.0f;
    for (int k = 0; k < 32; ++k) amax = std::fmax(amax, std::fabs(xb[k]));
    const float d = amax / 32767.0f;
    const float id = d != 0.0f ? 32767.0f / amax : 0.0f;
    int32_t s = 0;
    for (int k = 0; k < 32; ++k) {
      const int q = int(std::nearbyint(xb[k] * id));
      qs[b * 32 + act16_index(k)] = int16_t(q);
      s += q;
    }
    meta[b] = ActBlock{d, s, d * float(s)};
  }
}

void quantize_act_asym(const float* x, int64_t K, const float* inv_scale, int8_t* qs, ActBlock* meta) {
  const auto value = [&](int64_t k) { return inv_scale ? x[k] * inv_scale[k] : x[k]; };
  // Each block's min and max, the row's min, and whether the row can share it.
  const int64_t nb = K / 32;
  float row_lo = value(0);
  for (int64_t b = 0; b < nb; ++b) {
    float lo = value(b * 32), hi = lo;
    for (int k = 1; k < 32; ++k) {
      lo = std::fmin(lo, value(b * 32 + k));
      hi = std::fmax(hi, value(b * 32 + k));
    }
    meta[b].d = lo;  // (scratch until the codes: the block's min and max)
    meta[b].c = hi;
    row_lo = std::fmin(row_lo, lo);
  }
  bool one = true;
  for (int64_t b = 0; b < nb; ++b) one = one && meta[b].c - row_lo <= kAsymRowSpan * (meta[b].c - meta[b].d);
  for (int64_t b = 0; b < nb; ++b) {
    float v[32];
    for (int k = 0; k < 32; ++k) v[k] = value(b * 32 + k);
    if (non_finite(v)) {
      for (int k = 0; k < 32; ++k) qs[b * 32 + k] = 0;
      meta[b] = ActBlock{NAN, one ? 1 : 0, 0.0f, NAN};
      continue;
    }
    const float hi = meta[b].c, lo = one ? row_lo : meta[b].d;
    const float d = (hi - lo) / 255.0f;
    const float id = d != 0.0f ? 255.0f / (hi - lo) : 0.0f;
    for (int k = 0; k < 32; ++k) {
      int q = int(std::nearbyint((v[k] - lo) * id));
      q = q < 0 ? 0 : q > 255 ? 255 : q;
      qs[b * 32 + k] = int8_t(uint8_t(q));
    }
    meta[b] = ActBlock{d, one ? 1 : 0, 0.0f, lo};
  }
}

GemmIntFn gemm_int_asym(Family f) {
  switch (f) {
    case kSym4: return gemm_int<kSym4, ActQ8, true>;
    case kQ8: return gemm_int<kQ8, ActQ8, true>;
    default: return nullptr;
  }
}

GemmI16Fn gemm_i16(Family f) {
  switch (f) {
    case kSym4: return gemm_int<kSym4, ActQ16>;
    case kAffine4: return gemm_int<kAffine4, ActQ16>;
    default: return gemm_int<kQ8, ActQ16>;
  }
}

void fill(KernelTable& t) {
  t.isa = "scalar";
  t.quantize_act = quantize_act;
  for (int bf = 0; bf < 2; ++bf) {
    t.gemm_int[kSym4][bf] = gemm_int<kSym4, ActQ8>;
    t.gemm_int[kAffine4][bf] = gemm_int<kAffine4, ActQ8>;
    t.gemm_int[kQ8][bf] = gemm_int<kQ8, ActQ8>;
    t.gemm_float[kSym4][bf] = gemm_float<kSym4>;
    t.gemm_float[kAffine4][bf] = gemm_float<kAffine4>;
    t.gemm_float[kQ8][bf] = gemm_float<kQ8>;
  }
  t.dequantize_row = dequantize_row;
  fill_attention(t);
  fill_elementwise(t);
}

}  // namespace halfbyte::kernels::scalar
