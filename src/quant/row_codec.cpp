// Row encode/decode and block element grids (see row_codec.hpp). Block layouts:
// quant/blocks.hpp (q4_0, q4_1, q8_0) and quant/ggml_quants.hpp (q5_0, q4_K, q6_K).
#include "quant/row_codec.hpp"

#include <cmath>
#include <cstring>

#include "halfbyte/core/error.hpp"
#include "halfbyte/core/half.hpp"
#include "halfbyte/quant/ggml_quants.hpp"
#include "halfbyte/quant/quantize.hpp"

namespace halfbyte::quant {

using io::GgmlType;

namespace {

Format block_format(GgmlType t) {
  return t == GgmlType::Q4_0 ? Format::q4_0() : t == GgmlType::Q4_1 ? Format::q4_1() : Format::q8_0();
}

float f16_at(const uint8_t* p) noexcept { return ggml::detail::f16_load(p); }

// Sets the 4 bits of a nibble-packed byte: the low nibble (hi == false) or the high one.
void set_nibble(uint8_t& byte, bool hi, int v) noexcept {
  byte = hi ? uint8_t((byte & 0x0F) | (v & 0x0F) << 4) : uint8_t((byte & 0xF0) | (v & 0x0F));
}

}  // namespace

void encode_row(GgmlType t, const float* x, int64_t n, const float* w, uint8_t* dst) {
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, x, size_t(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_fp16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q8_0: {
      QuantizeOptions o;
      o.importance = w;
      quantize_row(block_format(t), x, n, dst, o);
      return;
    }
    case GgmlType::Q5_0:
      for (int64_t b = 0; b < n / 32; ++b) ggml::quantize_block_q5_0(x + 32 * b, w ? w + 32 * b : nullptr, dst + 22 * b);
      return;
    case GgmlType::Q5_1:
      for (int64_t b = 0; b < n / 32; ++b)
        ggml::quantize_block_q5_1(x + 32 * b, w ? w + 32 * b : nullptr, dst + ggml::kQ5_1Bytes * b);
      return;
    case GgmlType::Q4_K:
      for (int64_t b = 0; b < n / 256; ++b)
        ggml::quantize_block_q4_k(x + 256 * b, w ? w + 256 * b : nullptr, dst + ggml::kQ4KBytes * b);
      return;
    case GgmlType::Q5_K:
      for (int64_t b = 0; b < n / 256; ++b)
        ggml::quantize_block_q5_k(x + 256 * b, w ? w + 256 * b : nullptr, dst + ggml::kQ5KBytes * b);
      return;
    case GgmlType::Q6_K:
      for (int64_t b = 0; b < n / 256; ++b)
        ggml::quantize_block_q6_k(x + 256 * b, w ? w + 256 * b : nullptr, dst + ggml::kQ6KBytes * b);
      return;
    default:
      throw_error(ErrorKind::Runtime, "quantize: no encoder for ", io::ggml_type_info(t).name);
  }
}

void decode_row(GgmlType t, const uint8_t* src, int64_t n, float* y) {
  switch (t) {
    case GgmlType::F32: std::memcpy(y, src, size_t(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        y[i] = fp16_to_fp32(h);
      }
      return;
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q8_0: dequantize_row(block_format(t), src, n, y); return;
    case GgmlType::Q5_0:
      for (int64_t b = 0; b < n / 32; ++b) ggml::dequantize_block_q5_0(src + 22 * b, y + 32 * b);
      return;
    case GgmlType::Q5_1:
      for (int64_t b = 0; b < n / 32; ++b) ggml::dequantize_block_q5_1(src + ggml::kQ5_1Bytes * b, y + 32 * b);
      return;
    case GgmlType::Q4_K:
      for (int64_t b = 0; b < n / 256; ++b) ggml::dequantize_block_q4_k(src + ggml::kQ4KBytes * b, y + 256 * b);
      return;
    case GgmlType::Q5_K:
      for (int64_t b = 0; b < n / 256; ++b) ggml::dequantize_block_q5_k(src + ggml::kQ5KBytes * b, y + 256 * b);
      return;
    case GgmlType::Q6_K:
      for (int64_t b = 0; b < n / 256; ++b) ggml::dequantize_block_q6_k(src + ggml::kQ6KBytes * b, y + 256 * b);
      return;
    default:
      throw_error(ErrorKind::Runtime, "quantize: no decoder for ", io::ggml_type_info(t).name);
  }
}

int ElementGrid::nearest(float v) const noexcept {
  if (a == 0.0f || !std::isfinite(a)) return zero < lo ? lo : zero > hi ? hi : zero;
  return ref::clamp_code((v - b) / a + float(zero), lo, hi);
}

bool has_element_grid(GgmlType t) noexcept {
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q8_0: case GgmlType::Q5_0:
    case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

ElementGrid element_grid(GgmlType t, const uint8_t* blk, int j) {
  ElementGrid g;
  switch (t) {
    case GgmlType::Q4_0: g.a = f16_at(blk); g.zero = 8; g.hi = 15; return g;
    case GgmlType::Q4_1: g.a = f16_at(blk); g.b = f16_at(blk + 2); g.hi = 15; return g;
    // Codes -127..127, as halfbyte's and ggml's q8_0 quantizers write them.
    case GgmlType::Q8_0: g.a = f16_at(blk); g.lo = -127; g.hi = 127; return g;
    case GgmlType::Q5_0: g.a = f16_at(blk); g.zero = 16; g.hi = 31; return g;
    case GgmlType::Q5_1: g.a = f16_at(blk); g.b = f16_at(blk + 2); g.hi = 31; return g;
    case GgmlType::Q4_K: case GgmlType::Q5_K: {
      int sc, mn;
      ggml::unpack_scale_min_q4k(blk + 4, j / 32, &sc, &mn);
      g.a = f16_at(blk) * float(sc);
      g.b = -(f16_at(blk + 2) * float(mn));
      g.hi = t == GgmlType::Q4_K ? 15 : 31;
      return g;
    }
    case GgmlType::Q6_K:
      g.a = f16_at(blk + 208) * float(int8_t(blk[192 + j / 16]));
      g.zero = 32;
      g.hi = 63;
      return g;
    default:
      throw_error(ErrorKind::Runtime, "quantize: no element grid for ", io::ggml_type_info(t).name);
  }
}

void set_code(GgmlType t, uint8_t* blk, int j, int q) {
  switch (t) {
    case GgmlType::Q4_0: set_nibble(blk[2 + j % 16], j >= 16, q); return;
    case GgmlType::Q4_1: set_nibble(blk[4 + j % 16], j >= 16, q); return;
    case GgmlType::Q8_0: blk[2 + j] = uint8_t(int8_t(q)); return;
    case GgmlType::Q5_0: {
      set_nibble(blk[6 + j % 16], j >= 16, q);
      uint32_t qh;
      std::memcpy(&qh, blk + 2, 4);
      qh = (qh & ~(1u << j)) | uint32_t((q >> 4) & 1) << j;
      std::memcpy(blk + 2, &qh, 4);
      return;
    }
    case GgmlType::Q5_1: {
      set_nibble(blk[8 + j % 16], j >= 16, q);
      uint32_t qh;
      std::memcpy(&qh, blk + 4, 4);
      qh = (qh & ~(1u << j)) | uint32_t((q >> 4) & 1) << j;
      std::memcpy(blk + 4, &qh, 4);
      return;
    }
    case GgmlType::Q4_K: set_nibble(blk[16 + 32 * (j / 64) + j % 32], (j / 32) % 2 == 1, q); return;
    case GgmlType::Q5_K: {
      set_nibble(blk[48 + 32 * (j / 64) + j % 32], (j / 32) % 2 == 1, q);
      uint8_t& hi = blk[16 + j % 32];
      const int bit = j / 32;  // the sub-block
      hi = uint8_t((hi & ~(1 << bit)) | ((q >> 4) & 1) << bit);
      return;
    }
    case GgmlType::Q6_K: {
      const int h = j / 128, g = (j / 32) % 4, l = j % 32;
      uint8_t& lo = blk[64 * h + 32 * (g % 2) + l];
      set_nibble(lo, g >= 2, q);
      uint8_t& hi = blk[128 + 32 * h + l];
      hi = uint8_t((hi & ~(3 << (2 * g))) | ((q >> 4) & 3) << (2 * g));
      return;
    }
    default:
      throw_error(ErrorKind::Runtime, "quantize: no element grid for ", io::ggml_type_info(t).name);
  }
}

}  // namespace halfbyte::quant
