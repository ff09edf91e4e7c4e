// AVX-512 VNNI kernels (F/BW/VL/DQ + VNNI). One zmm lane per weight row of a
// 16-row group, so a packed 64-byte chunk (16 rows x 4 consecutive k) is one
// vpdpbusd operand and no horizontal sums are needed. Results of the integer
// path equal kernels/scalar bit for bit (contract in kernel_table.hpp).
#include <immintrin.h>

#include <cstring>

#include "kernel_table.hpp"

namespace halfbyte::kernels::avx512 {
namespace {

// Everything in this file has internal linkage, and it calls no inline function of
// a shared header: such a function compiled here with AVX-512 flags could be the
// copy the linker keeps for the whole program.

inline const uint8_t* group_ptr(const Packed& w, int64_t g) { return w.data + size_t(g) * w.row_group_bytes; }

// 16 scales (fp16 or bf16 bits) -> 16 floats.
template <bool BF16>
inline __m512 load_scales(const uint8_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline void store_rows(float* y, __m512 v, int nvalid) {
  if (nvalid >= 16)
    _mm512_storeu_ps(y, v);
  else
    _mm512_mask_storeu_ps(y, __mmask16((1u << nvalid) - 1u), v);
}

// ---- activation quantization --------------------------------------------------------

void quantize_act(const float* x, int64_t K, int8_t* qs, ActBlock* meta) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < K / 32; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + b * 32), x1 = _mm512_loadu_ps(x + b * 32 + 16);
    const __m512 a = _mm512_max_ps(_mm512_andnot_ps(sign, x0), _mm512_andnot_ps(sign, x1));
    const float amax = _mm512_reduce_max_ps(a);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 127.0f / amax : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));  // round to nearest even
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * 32), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * 32 + 16), _mm512_cvtepi32_epi8(q1));
    const int32_t s = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    meta[b] = ActBlock{d, s, d * float(s)};
  }
}

// ---- integer path -----------------------------------------------------------------------

// Weights of one 32-k sub-block as 8 u8 operands: chunk c holds k = 4c .. 4c + 3.
template <Family F>
inline void load_sub_block(const uint8_t* sub, __m512i (&wc)[8]) {
  if constexpr (F == kQ8) {
    const __m512i bias = _mm512_set1_epi8(char(0x80));  // int8 -> u8 = q + 128
    for (int c = 0; c < 8; ++c)
      wc[c] = _mm512_xor_si512(_mm512_loadu_si512(sub + 64 * c), bias);
  } else {
    const __m512i lo = _mm512_set1_epi8(0x0F);
    for (int j = 0; j < 4; ++j) {
      const __m512i v = _mm512_loadu_si512(sub + 64 * j);
      wc[j] = _mm512_and_si512(v, lo);
      wc[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), lo);
    }
  }
}

// MR rows of x (starting at m) against row group g: acc[r] for 16 weight rows.
template <Family F, bool BF16, int MR>
inline void tile_int(const Packed& w, const ActQ8& x, int64_t g, int64_t m, float* y, int64_t ldy, int nvalid) {
  const int64_t nb = x.K / 32;
  const uint8_t* grp = group_ptr(w, g);
  __m512 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t s = 0; s < w.scale_groups; ++s) {
    const uint8_t* sg = grp + size_t(s) * w.scale_group_bytes;
    const __m512 dw = load_scales<BF16>(sg);
    __m512 mw = _mm512_setzero_ps();
    if constexpr (F == kAffine4) mw = load_scales<BF16>(sg + 32);
    for (int b = 0; b < w.bps; ++b) {
      const uint8_t* sub = sg + w.header_bytes + size_t(b) * w.sub_block_bytes;
      const int64_t kb = s * w.bps + b;
      __m512i wc[8];
      load_sub_block<F>(sub, wc);
      for (int r = 0; r < MR; ++r) {
        const int8_t* xq = x.qs + (m + r) * x.K + kb * 32;
        const ActBlock a = x.meta[(m + r) * nb + kb];
        __m512i i0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wc[0], bcast4(xq));
        __m512i i1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wc[1], bcast4(xq + 4));
        i0 = _mm512_dpbusd_epi32(i0, wc[2], bcast4(xq + 8));
        i1 = _mm512_dpbusd_epi32(i1, wc[3], bcast4(xq + 12));
        i0 = _mm512_dpbusd_epi32(i0, wc[4], bcast4(xq + 16));
        i1 = _mm512_dpbusd_epi32(i1, wc[5], bcast4(xq + 20));
        i0 = _mm512_dpbusd_epi32(i0, wc[6], bcast4(xq + 24));
        i1 = _mm512_dpbusd_epi32(i1, wc[7], bcast4(xq + 28));
        __m512i isum = _mm512_add_epi32(i0, i1);
        if constexpr (F == kSym4) isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(8 * a.s));
        if constexpr (F == kQ8) isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(128 * a.s));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(a.d)), acc[r]);
        if constexpr (F == kAffine4) acc[r] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a.ds), acc[r]);
      }
    }
  }
  for (int r = 0; r < MR; ++r) store_rows(y + (m + r) * ldy + g * 16, acc[r], nvalid);
}

constexpr int kMR = 4;             // rows of x per tile
constexpr int64_t kGroupChunk = 8;  // row groups kept hot in L2 while x passes

template <Family F, bool BF16, class Tile>
inline void sweep(const Packed& w, const GemmTask& t, Tile&& tile) {
  for (int64_t g0 = t.g0; g0 < t.g1; g0 += kGroupChunk) {
    const int64_t g1 = g0 + kGroupChunk < t.g1 ? g0 + kGroupChunk : t.g1;
    int64_t m = t.m0;
    for (; m + kMR <= t.m1; m += kMR)
      for (int64_t g = g0; g < g1; ++g) tile(std::integral_constant<int, kMR>{}, g, m);
    const int64_t rest = t.m1 - m;
    for (int64_t g = g0; g < g1 && rest > 0; ++g) {
      if (rest == 3) tile(std::integral_constant<int, 3>{}, g, m);
      else if (rest == 2) tile(std::integral_constant<int, 2>{}, g, m);
      else tile(std::integral_constant<int, 1>{}, g, m);
    }
  }
}

template <Family F, bool BF16>
void gemm_int(const Packed& w, const ActQ8& x, const GemmTask& t) {
  sweep<F, BF16>(w, t, [&](auto mr, int64_t g, int64_t m) {
    const int nvalid = int(w.rows - g * 16 < 16 ? w.rows - g * 16 : 16);
    tile_int<F, BF16, decltype(mr)::value>(w, x, g, m, t.y, t.ldy, nvalid);
  });
}

// ---- float path ---------------------------------------------------------------------------

// Value of byte i of each lane as fp32 (codes: unsigned 4-bit, or signed int8).
template <Family F>
inline __m512 lane_byte(__m512i v, int i) {
  if constexpr (F == kQ8) {
    return _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * i), 24));
  } else {
    __m512i c = _mm512_and_si512(_mm512_srli_epi32(v, 8 * i), _mm512_set1_epi32(0xFF));
    if constexpr (F == kSym4) c = _mm512_sub_epi32(c, _mm512_set1_epi32(8));
    return _mm512_cvtepi32_ps(c);
  }
}

template <Family F, bool BF16, int MR>
inline void tile_float(const Packed& w, const ActF32& x, int64_t g, int64_t m, float* y, int64_t ldy, int nvalid) {
  const int64_t nb = w.cols / 32;
  const uint8_t* grp = group_ptr(w, g);
  __m512 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t s = 0; s < w.scale_groups; ++s) {
    const uint8_t* sg = grp + size_t(s) * w.scale_group_bytes;
    const __m512 dw = load_scales<BF16>(sg);
    __m512 mw = _mm512_setzero_ps();
    if constexpr (F == kAffine4) mw = load_scales<BF16>(sg + 32);
    for (int b = 0; b < w.bps; ++b) {
      const uint8_t* sub = sg + w.header_bytes + size_t(b) * w.sub_block_bytes;
      const int64_t kb = s * w.bps + b;
      __m512i wc[8];
      if constexpr (F == kQ8) {
        for (int c = 0; c < 8; ++c) wc[c] = _mm512_loadu_si512(sub + 64 * c);
      } else {
        load_sub_block<F>(sub, wc);
      }
      __m512 tsum[MR];
      for (int r = 0; r < MR; ++r) tsum[r] = _mm512_setzero_ps();
      for (int c = 0; c < 8; ++c) {
        for (int i = 0; i < 4; ++i) {
          const __m512 v = lane_byte<F>(wc[c], i);
          for (int r = 0; r < MR; ++r)
            tsum[r] = _mm512_fmadd_ps(v, _mm512_set1_ps(x.x[(m + r) * x.ldx + kb * 32 + 4 * c + i]), tsum[r]);
        }
      }
      for (int r = 0; r < MR; ++r) {
        acc[r] = _mm512_fmadd_ps(tsum[r], dw, acc[r]);
        if constexpr (F == kAffine4) acc[r] = _mm512_fmadd_ps(mw, _mm512_set1_ps(x.xsum[(m + r) * nb + kb]), acc[r]);
      }
    }
  }
  for (int r = 0; r < MR; ++r) store_rows(y + (m + r) * ldy + g * 16, acc[r], nvalid);
}

template <Family F, bool BF16>
void gemm_float(const Packed& w, const ActF32& x, const GemmTask& t) {
  sweep<F, BF16>(w, t, [&](auto mr, int64_t g, int64_t m) {
    const int nvalid = int(w.rows - g * 16 < 16 ? w.rows - g * 16 : 16);
    tile_float<F, BF16, decltype(mr)::value>(w, x, g, m, t.y, t.ldy, nvalid);
  });
}

}  // namespace

void fill(KernelTable& t) {
  t.quantize_act = quantize_act;
  t.gemm_int[kSym4][0] = gemm_int<kSym4, false>;
  t.gemm_int[kSym4][1] = gemm_int<kSym4, true>;
  t.gemm_int[kAffine4][0] = gemm_int<kAffine4, false>;
  t.gemm_int[kAffine4][1] = gemm_int<kAffine4, true>;
  t.gemm_int[kQ8][0] = gemm_int<kQ8, false>;
  t.gemm_int[kQ8][1] = gemm_int<kQ8, true>;
  t.gemm_float[kSym4][0] = gemm_float<kSym4, false>;
  t.gemm_float[kSym4][1] = gemm_float<kSym4, true>;
  t.gemm_float[kAffine4][0] = gemm_float<kAffine4, false>;
  t.gemm_float[kAffine4][1] = gemm_float<kAffine4, true>;
  t.gemm_float[kQ8][0] = gemm_float<kQ8, false>;
  t.gemm_float[kQ8][1] = gemm_float<kQ8, true>;
  fill_attention(t);
}

}  // namespace halfbyte::kernels::avx512
