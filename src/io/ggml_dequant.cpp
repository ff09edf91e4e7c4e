#include "io/ggml_dequant.hpp"

#include <cstring>

#include "halfbyte/core/half.hpp"

namespace halfbyte::io {
namespace {

constexpr int kQK = 256;  // elements per k-quant super-block

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// q5_0: fp16 d, 32 high bits (uint32 LE), 16 bytes of low nibbles. Element j < 16
// is the low nibble of qs[j], j >= 16 the high nibble of qs[j - 16]; bit j of qh
// is its fifth bit. Value d * (q - 16).
// q5_1: fp16 d, fp16 m, then as q5_0; value d * q + m.
void block_q5(const uint8_t* b, bool affine, float* y) {
  const float d = f16_at(b);
  const float m = affine ? f16_at(b + 2) : 0.0f;
  const uint8_t* p = b + (affine ? 4 : 2);
  const uint32_t qh = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  const uint8_t* qs = p + 4;
  const int bias = affine ? 0 : 16;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | int((qh >> j) & 1u) << 4;
    const int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1u) << 4;
    y[j] = d * float(lo - bias) + m;
    y[j + 16] = d * float(hi - bias) + m;
  }
}

// The 12-byte table of eight 6-bit (scale, min) pairs of q4_K and q5_K: pairs 0-3
// are the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); pairs 4-7 take their
// low 4 bits from the nibbles of bytes 8-11 and their top 2 bits from the top 2
// bits of bytes 0-3 (scales) and 4-7 (mins).
void scale_min_k4(int j, const uint8_t* s, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0x0F) | (s[j - 4] >> 6) << 4;
    *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

// q4_K (144 bytes): fp16 d, fp16 dmin, 12 scale bytes, 128 nibble bytes. Eight
// sub-blocks of 32; sub-blocks 2i and 2i+1 are the low and high nibbles of bytes
// 32i..32i+31. Value d * sc * q - dmin * min.
// q5_K (176 bytes): as q4_K with 32 high-bit bytes before the nibbles: bit i of
// qh[l] is the fifth bit of element l of sub-block i.
void block_q45_k(const uint8_t* b, bool five, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t* sc_bytes = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + (five ? 48 : 16);
  for (int s = 0; s < 8; ++s) {
    int sc, mn;
    scale_min_k4(s, sc_bytes, &sc, &mn);
    const float ds = d * float(sc), ms = dmin * float(mn);
    const uint8_t* q = qs + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    for (int l = 0; l < 32; ++l) {
      int v = (q[l] >> shift) & 0x0F;
      if (five) v |= ((qh[l] >> s) & 1) << 4;
      y[32 * s + l] = ds * float(v) - ms;
    }
  }
}

// q6_K (210 bytes): 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 int8
// scales (one per 16 elements), fp16 d. Half h (128 elements) uses ql[64h..] and
// qh[32h..]: element 128h + 32g + l (g = 0..3) takes the low (g < 2) or high
// (g >= 2) nibble of ql[64h + 32(g % 2) + l] and bits 2g..2g+1 of qh[32h + l].
// Value d * scale * (q - 32).
void block_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16_at(b + 208);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* l4 = ql + 64 * h;
    const uint8_t* h2 = qh + 32 * h;
    for (int g = 0; g < 4; ++g) {
      const uint8_t* lo = l4 + 32 * (g % 2);
      const int nshift = 4 * (g / 2);
      for (int l = 0; l < 32; ++l) {
        const int e = 128 * h + 32 * g + l;
        const int q = (((lo[l] >> nshift) & 0x0F) | ((h2[l] >> (2 * g)) & 3) << 4) - 32;
        y[e] = d * float(sc[e / 16]) * float(q);
      }
    }
  }
}

// q2_K (84 bytes): 16 scale bytes (low nibble scale, high nibble min, one per 16
// elements), 64 bytes of 2-bit codes, fp16 d, fp16 dmin. Element 128h + 32s + l
// is bits 2s..2s+1 of qs[32h + l]. Value d * sc * q - dmin * min.
void block_q2_k(const uint8_t* b, float* y) {
  const uint8_t* sc = b;
  const uint8_t* qs = b + 16;
  const float d = f16_at(b + 80), dmin = f16_at(b + 82);
  for (int e = 0; e < kQK; ++e) {
    const int h = e / 128, s = (e / 32) % 4, l = e % 32;
    const int q = (qs[32 * h + l] >> (2 * s)) & 3;
    const uint8_t k = sc[e / 16];
    y[e] = d * float(k & 0x0F) * float(q) - dmin * float(k >> 4);
  }
}

// q3_K (110 bytes): 32 bytes of high-bit masks, 64 bytes of 2-bit codes, 12 bytes
// of sixteen 6-bit scales (biased by 32), fp16 d. Element e = 128h + 32s + l has
// low bits 2s..2s+1 of qs[32h + l] and its third bit is bit e/32 of hmask[l];
// a clear bit subtracts 4. Scale i: low 4 bits are nibble (i / 8) of byte i % 8,
// top 2 bits are bits 2(i / 4).. of byte 8 + i % 4. Value d * (scale - 32) * q.
void block_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hm = b;
  const uint8_t* qs = b + 32;
  const uint8_t* s = b + 96;
  const float d = f16_at(b + 108);
  int scale[16];
  for (int i = 0; i < 16; ++i) {
    const int lo = (s[i % 8] >> (4 * (i / 8))) & 0x0F;
    const int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    scale[i] = (lo | hi << 4) - 32;
  }
  for (int e = 0; e < kQK; ++e) {
    const int h = e / 128, sh = (e / 32) % 4, l = e % 32;
    int q = (qs[32 * h + l] >> (2 * sh)) & 3;
    if (!((hm[l] >> (e / 32)) & 1)) q -= 4;
    y[e] = d * float(scale[e / 16]) * float(q);
  }
}

// q8_K (292 bytes): fp32 d, 256 int8 codes, 16 int16 block sums (unused here).
void block_q8_k(const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, 4);
  for (int e = 0; e < kQK; ++e) y[e] = d * float(int8_t(b[4 + e]));
}

}  // namespace

bool ggml_dequantize_supported(GgmlType t) {
  switch (t) {
    case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q2_K: case GgmlType::Q3_K:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: case GgmlType::Q8_K:
      return true;
    default:
      return false;
  }
}

bool ggml_dequantize_row(GgmlType t, const uint8_t* src, int64_t n, float* out) {
  if (!ggml_dequantize_supported(t)) return false;
  const GgmlTypeInfo& ti = ggml_type_info(t);
  if (n < 0 || n % ti.block != 0) return false;
  const int64_t nb = n / ti.block;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = src + size_t(i) * size_t(ti.block_bytes);
    float* y = out + i * ti.block;
    switch (t) {
      case GgmlType::Q5_0: block_q5(b, false, y); break;
      case GgmlType::Q5_1: block_q5(b, true, y); break;
      case GgmlType::Q2_K: block_q2_k(b, y); break;
      case GgmlType::Q3_K: block_q3_k(b, y); break;
      case GgmlType::Q4_K: block_q45_k(b, false, y); break;
      case GgmlType::Q5_K: block_q45_k(b, true, y); break;
      case GgmlType::Q6_K: block_q6_k(b, y); break;
      case GgmlType::Q8_K: block_q8_k(b, y); break;
      default: return false;
    }
  }
  return true;
}

}  // namespace halfbyte::io
