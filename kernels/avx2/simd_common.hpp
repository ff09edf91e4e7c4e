// Helpers shared by the AVX2 kernel files (kernels/avx2/*.cpp only: everything has
// internal linkage, so that a copy compiled with AVX2 flags is never the one the
// linker keeps for code built for baseline x86-64; tests/install/check_isa_symbols.cmake).
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "kernel_table.hpp"

namespace halfbyte::kernels::avx2 {
namespace {

inline const uint8_t* group_ptr(const Packed& w, int64_t g) { return w.data + size_t(g) * w.row_group_bytes; }

// 8 consecutive 16-bit scales (fp16 or bf16) -> fp32, exactly.
template <bool BF>
inline __m256 load_scales8(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (BF) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  else return _mm256_cvtph_ps(h);
}

// The 4 bytes at p in every 32-bit lane.
inline __m256i bcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// An opaque use: stops the compiler from reassociating a sum of many products into
// a tree that keeps them all live (it spills them to the stack otherwise).
inline void pin(__m256i& v) { __asm__("" : "+x"(v)); }

inline __m256i load256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

inline int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Whether any lane of the 32-block a, b, c, d is NaN or infinite (v - v is NaN).
inline bool non_finite(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab = _mm256_cmp_ps(_mm256_sub_ps(a, a), _mm256_sub_ps(b, b), _CMP_UNORD_Q);
  const __m256 cd = _mm256_cmp_ps(_mm256_sub_ps(c, c), _mm256_sub_ps(d, d), _CMP_UNORD_Q);
  return _mm256_movemask_ps(_mm256_or_ps(ab, cd)) != 0;
}

inline float hmax(__m256 v) {  // v has no NaN
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Writes 8 lanes (rows n0 .. n0 + 7) of one output row, only the valid ones.
inline void store8(float* yrow, int64_t n0, int64_t rows, __m256 v) {
  if (n0 + 8 <= rows) {
    _mm256_storeu_ps(yrow + n0, v);
  } else if (n0 < rows) {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    for (int64_t r = 0; n0 + r < rows; ++r) yrow[n0 + r] = tmp[r];
  }
}

// An fp32 tile's sums in L1: zeroed with vector stores (the compiler turns a loop
// or `= {}` into rep stos, ~8% of a GEMM tile), one load and store per block.
template <int MR, int NH>
inline void zero_sums(float (&acc)[MR][NH][8]) {
  __m256 z = _mm256_setzero_ps();
  __asm__("" : "+x"(z));
  for (int i = 0; i < MR; ++i)
    for (int h = 0; h < NH; ++h) _mm256_store_ps(acc[i][h], z);
}

constexpr int64_t kPanelBytes = 192 * 1024;  // weight panel kept in L2 while x passes (tried 36-768 KB)

// Row groups in panels of ~kPanelBytes; within a panel, MR rows of x at a time
// pass over every group (the rows' activations stay in L1, the panel in L2).
template <class Tile1, class Tile2, class Tile3, class Tile4>
void drive(const Packed& w, const GemmTask& t, Tile1 tile1, Tile2 tile2, Tile3 tile3, Tile4 tile4) {
  const int64_t rgb = int64_t(w.row_group_bytes);
  const int64_t gb = rgb > 0 && rgb < kPanelBytes ? kPanelBytes / rgb : 1;
  for (int64_t p0 = t.g0; p0 < t.g1; p0 += gb) {
    const int64_t p1 = p0 + gb < t.g1 ? p0 + gb : t.g1;
    int64_t m = t.m0;
    for (; m + 4 <= t.m1; m += 4)
      for (int64_t g = p0; g < p1; ++g) tile4(g, m);
    switch (t.m1 - m) {
      case 3:
        for (int64_t g = p0; g < p1; ++g) tile3(g, m);
        break;
      case 2:
        for (int64_t g = p0; g < p1; ++g) tile2(g, m);
        break;
      case 1:
        for (int64_t g = p0; g < p1; ++g) tile1(g, m);
        break;
      default:
        break;
    }
  }
}

}  // namespace
}  // namespace halfbyte::kernels::avx2
