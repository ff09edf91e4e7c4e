// Helpers shared by the AVX-512 kernel files (kernels/avx512/*.cpp only: every
// function has internal linkage, so that a copy compiled with AVX-512 flags is never
// the one the linker keeps for code built for baseline x86-64).
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "kernel_table.hpp"

namespace halfbyte::kernels::avx512 {
namespace {

// Lane j of the result: op over the 16 lanes of v[j] (16 horizontal reductions in
// 45 shuffles and ops instead of 16 x 8). Level by level, each vector holds partial
// results of more inputs; the inputs are taken in transposed order (slot 4e + k
// gets v[4k + e]) so that the last level's lanes come out in natural order.
template <class Op>
inline __m512 reduce16(const __m512 (&v)[16], Op op) {
  __m512 a[8], b[4], c[2];
  const auto in = [&](int i) -> const __m512& { return v[(i % 4) * 4 + i / 4]; };
  for (int i = 0; i < 8; ++i)  // 128-bit lanes 0-1: input 2i's 8 partials, 2-3: input 2i+1's
    a[i] = op(_mm512_shuffle_f32x4(in(2 * i), in(2 * i + 1), 0x44), _mm512_shuffle_f32x4(in(2 * i), in(2 * i + 1), 0xEE));
  for (int i = 0; i < 4; ++i)  // 128-bit lane l: input 4i + l's 4 partials
    b[i] = op(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)  // lane l: elements 0-1 input 8i + l's 2 partials, 2-3 input 8i + 4 + l's
    c[i] = op(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  return op(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));  // lane 4l + e: input 4e + l
}

// erf(x) as a rational function (x clamped to [-4, 4], where erf is 1 to fp32).
inline __m512 erf_rational(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-4.0f)), _mm512_set1_ps(4.0f));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_fmadd_ps(x2, _mm512_set1_ps(-2.72614225801306e-10f), _mm512_set1_ps(2.77068142495902e-08f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-2.10102402082508e-06f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-5.69250639462346e-05f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-7.34990630326855e-04f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-2.95459980854025e-03f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-1.60960333262415e-02f));
  p = _mm512_mul_ps(x, p);
  __m512 q = _mm512_fmadd_ps(x2, _mm512_set1_ps(-1.45660718464996e-05f), _mm512_set1_ps(-2.13374055278905e-04f));
  q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-1.68282697438203e-03f));
  q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-7.37332916720468e-03f));
  q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-1.42647390514189e-02f));
  return _mm512_div_ps(p, q);
}

// gelu(v) = v / 2 (1 + erf(v / sqrt 2)).
inline __m512 gelu_ps(__m512 v) {
  const __m512 e = erf_rational(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f)));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// 64-byte aligned storage for the arranged weights (aligned vector loads).
template <class T>
struct AlignedAlloc {
  using value_type = T;
  AlignedAlloc() = default;
  template <class U>
  AlignedAlloc(const AlignedAlloc<U>&) {}
  T* allocate(size_t n) {
    void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <class U>
  bool operator==(const AlignedAlloc<U>&) const { return true; }
  template <class U>
  bool operator!=(const AlignedAlloc<U>&) const { return false; }
};

inline const uint8_t* group_ptr(const Packed& w, int64_t g) { return w.data + size_t(g) * w.row_group_bytes; }

// 16 scales (fp16 or bf16 bits) -> 16 floats.
template <bool BF16>
inline __m512 load_scales(const uint8_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

// 4 bytes (4 int8 or 2 int16) broadcast to every 32-bit lane.
inline __m512i bcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One 32-block of activations rounded (to nearest even) to integers of magnitude
// at most qmax: k 0-15 in q0, 16-31 in q1; returns the block's scale amax / qmax.
// A block with a NaN or an infinity (v - v NaN): codes 0 and a NaN scale
// (kernel_table.hpp).
inline float quantize_block(const float* x, float qmax, __m512i& q0, __m512i& q1) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
  if (_mm512_cmp_ps_mask(_mm512_sub_ps(x0, x0), _mm512_sub_ps(x1, x1), _CMP_UNORD_Q) != 0) {
    q0 = q1 = _mm512_setzero_si512();
    return NAN;
  }
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, x0), _mm512_andnot_ps(sign, x1)));
  const float d = amax / qmax;
  const __m512 vid = _mm512_set1_ps(d != 0.0f ? qmax / amax : 0.0f);
  q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));
  q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));
  return d;
}

// The first min(n, 16) lanes.
inline __mmask16 first_lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

inline void store_rows(float* y, __m512 v, int nvalid) {
  if (nvalid >= 16)
    _mm512_storeu_ps(y, v);
  else
    _mm512_mask_storeu_ps(y, first_lanes(nvalid), v);
}

// Arranged tiles' per-block step: acc[r][j] += float(is[r][j]) * dw_j * d_r (affine:
// + mw_j * ds_r), dw (then mw) as NG x 16 fp32, meta at row m's block (row stride nb).
template <bool Affine, int MR, int NG>
inline void scale_block(__m512 (&acc)[MR][NG], const __m512i (&is)[MR][NG], const float* dw, const ActBlock* meta,
                        int64_t nb) {
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    const ActBlock& a = meta[r * nb];
    const __m512 da = _mm512_set1_ps(a.d);
    for (int j = 0; j < NG; ++j) {
      acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[r][j]), _mm512_mul_ps(_mm512_load_ps(dw + 16 * j), da),
                                  acc[r][j]);
      if constexpr (Affine)
        acc[r][j] = _mm512_fmadd_ps(_mm512_load_ps(dw + 16 * (NG + j)), _mm512_set1_ps(a.ds), acc[r][j]);
    }
  }
}

// acc = gelu(acc + bias) for NG groups from g (bias [rows] or null; the matrix's last
// group may be partial: its bias is read only for its valid lanes).
template <int MR, int NG>
inline void bias_gelu_tile(__m512 (&acc)[MR][NG], const float* bias, bool gelu, int64_t g, int64_t rows) {
  if (bias) {
    for (int j = 0; j < NG; ++j) {
      const __m512 b = _mm512_maskz_loadu_ps(first_lanes(rows - (g + j) * 16), bias + (g + j) * 16);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) acc[r][j] = _mm512_add_ps(acc[r][j], b);
    }
  }
  if (gelu) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NG; ++j) acc[r][j] = gelu_ps(acc[r][j]);
  }
}

// MR rows from m of NG groups from g into y (the matrix's last group may be partial).
template <int MR, int NG>
inline void store_tile(const __m512 (&acc)[MR][NG], float* y, int64_t ldy, int64_t m, int64_t g, int64_t rows) {
  for (int j = 0; j < NG; ++j) {
    const int64_t left = rows - (g + j) * 16;
    const int nvalid = int(left < 16 ? left : 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) store_rows(y + (m + r) * ldy + (g + j) * 16, acc[r][j], nvalid);
  }
}

// Chunk c (k = 4c..4c+3 of every row) of a sub-block as bytes: int8 codes (q8) or
// 4-bit codes 0..15.
template <Family F>
inline __m512i chunk(const uint8_t* sub, int c) {
  if constexpr (F == kQ8) {
    return _mm512_loadu_si512(sub + 64 * c);
  } else {
    const __m512i v = _mm512_loadu_si512(sub + 64 * (c & 3));
    const __m512i lo = _mm512_set1_epi8(0x0F);
    return c < 4 ? _mm512_and_si512(v, lo) : _mm512_and_si512(_mm512_srli_epi16(v, 4), lo);
  }
}

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

constexpr int64_t kGroupChunk = 8;  // row groups kept hot in L2 while x passes

// The task's row groups in chunks of kGroupChunk; within a chunk, MR rows of x at a
// time against each group (tile(mr, g, m)), then the last rows (fewer than MR).
template <int MR, class Tile>
inline void sweep_rows(const GemmTask& t, Tile&& tile) {
  for (int64_t g0 = t.g0; g0 < t.g1; g0 += kGroupChunk) {
    const int64_t g1 = g0 + kGroupChunk < t.g1 ? g0 + kGroupChunk : t.g1;
    int64_t m = t.m0;
    for (; m + MR <= t.m1; m += MR)
      for (int64_t g = g0; g < g1; ++g) tile(std::integral_constant<int, MR>{}, g, m);
    const int64_t rest = t.m1 - m;
    for (int64_t g = g0; g < g1 && rest > 0; ++g) tail_rows<MR - 1>(rest, tile, g, m);
  }
}

}  // namespace
}  // namespace halfbyte::kernels::avx512
