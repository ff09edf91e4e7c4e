// AVX-512 VNNI kernels (F/BW/VL/DQ + VNNI). One zmm lane per weight row of a
// 16-row group, so a packed 64-byte chunk (16 rows x 4 consecutive k) is one
// vpdpbusd operand and no horizontal sums are needed. Results of the integer
// path equal kernels/scalar bit for bit (contract in kernel_table.hpp).
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "avx512/simd_common.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::avx512 {
namespace {

// ---- activation quantization --------------------------------------------------------

void quantize_act(const float* x, int64_t K, int8_t* qs, ActBlock* meta) {
  for (int64_t b = 0; b < K / 32; ++b) {
    __m512i q0, q1;
    const float d = quantize_block(x + b * 32, 127.0f, q0, q1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * 32), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * 32 + 16), _mm512_cvtepi32_epi8(q1));
    const int32_t s = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    meta[b] = ActBlock{d, s, d * float(s)};
  }
}

// Lanes 0-7 of the result: op over the 16 lanes of v[0..7] (the last level of
// reduce16's tree, then one permutation from its lane order: v[4e + l] lands in lane
// 4l + 2e).
template <class Op>
inline __m512 reduce8(const __m512 (&v)[8], Op op) {
  __m512 a[4], b[2];
  for (int i = 0; i < 4; ++i)  // 128-bit lanes 0-1: v[2i]'s 8 partials, 2-3: v[2i + 1]'s
    a[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  for (int i = 0; i < 2; ++i)  // 128-bit lane l: v[4i + l]'s 4 partials
    b[i] = op(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
  // Lane l: elements 0-1 v[l]'s 2 partials, 2-3 v[4 + l]'s; then each pair's op.
  const __m512 c = op(_mm512_shuffle_ps(b[0], b[1], 0x44), _mm512_shuffle_ps(b[0], b[1], 0xEE));
  const __m512 e = op(c, _mm512_shuffle_ps(c, c, 0xB1));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0), e);
}

// Codes of 64 values (two blocks: v0..v3) as (v - lo) * id rounded, each block with
// its own lo and id, clamped to 0..255 by the packs' saturation (v >= lo but for NaN,
// whose code is 0 as well) into 64 bytes in order.
inline __m512i codes64(const __m512 (&v)[4], __m512 lo0, __m512 id0, __m512 lo1, __m512 id1) {
  const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(v[0], lo0), id0));
  const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(v[1], lo0), id0));
  const __m512i q2 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(v[2], lo1), id1));
  const __m512i q3 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(v[3], lo1), id1));
  // Per 128-bit lane L, dword t holds q_t's values 4L..4L+3: transposed back.
  const __m512i b = _mm512_packus_epi16(_mm512_packs_epi32(q0, q1), _mm512_packs_epi32(q2, q3));
  return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), b);
}

void quantize_act_asym(const float* x, int64_t K, const float* inv_scale, int8_t* qs, ActBlock* meta) {
  const auto load = [&](int64_t k) {
    const __m512 v = _mm512_loadu_ps(x + k);
    return inv_scale ? _mm512_mul_ps(v, _mm512_loadu_ps(inv_scale + k)) : v;
  };
  // Blocks 8 at a time for their mins and maxes, 16 at a time for their steps and
  // inverses (as vectors; a last group of fewer padded: K = 384 is 12 blocks), two at
  // a time for the codes; every value in the scalar reference's fp32 operations.
  const int64_t nb = K / 32;
  constexpr int64_t kStackBlocks = 256;
  alignas(64) float stack[2 * kStackBlocks];
  // (Rows of more than 8192 values; kept per thread: no allocation per row. The
  // allocator, local to these files, keeps the vector's code out of other objects.)
  thread_local std::vector<float, AlignedAlloc<float>> heap;
  if (nb > kStackBlocks && heap.size() < size_t(2 * nb)) heap.resize(size_t(2 * nb));
  float* const lo_b = nb <= kStackBlocks ? stack : heap.data();
  float* const hi_b = lo_b + nb;
  // Each block's min and max, and the row's min. A lane with a NaN makes the lane's
  // min or max NaN (vminps/vmaxps return their second operand then), an infinity
  // makes max - min infinite or NaN: `spans` stays finite unless some value is NaN or
  // infinite (or finite spans add up past FLT_MAX: then the exact test below, too).
  __m512 row_lo16 = _mm512_set1_ps(INFINITY), spans = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b += 8) {
    const int64_t n = nb - b < 8 ? nb - b : 8;
    __m512 lo[8], hi[8];
    for (int i = 0; i < 8; ++i) {
      if (i < n) {
        const __m512 v0 = load((b + i) * 32), v1 = load((b + i) * 32 + 16);
        lo[i] = _mm512_min_ps(v0, v1);
        hi[i] = _mm512_max_ps(v1, v0);
        spans = _mm512_add_ps(spans, _mm512_sub_ps(hi[i], lo[i]));
      } else {
        lo[i] = hi[i] = _mm512_setzero_ps();  // (lanes past the last block: never stored)
      }
    }
    const __mmask16 k = first_lanes(n);
    const __m512 blo = reduce8(lo, [](__m512 a, __m512 c) { return _mm512_min_ps(a, c); });
    _mm512_mask_storeu_ps(lo_b + b, k, blo);
    _mm512_mask_storeu_ps(hi_b + b, k, reduce8(hi, [](__m512 a, __m512 c) { return _mm512_max_ps(a, c); }));
    row_lo16 = _mm512_mask_min_ps(row_lo16, k, row_lo16, blo);
  }
  const bool suspect = _mm512_cmp_ps_mask(_mm512_sub_ps(spans, spans), _mm512_setzero_ps(), _CMP_UNORD_Q) != 0;
  const float row_lo = _mm512_reduce_min_ps(row_lo16);
  // Whether the row can share its min: no block's step widens by more than kAsymRowSpan.
  bool one = true;
  const __m512 vrow_lo = _mm512_set1_ps(row_lo), vspan = _mm512_set1_ps(kAsymRowSpan);
  for (int64_t b = 0; b < nb; b += 16) {
    const __mmask16 k = first_lanes(nb - b);
    const __m512 hi = _mm512_maskz_loadu_ps(k, hi_b + b), lo = _mm512_maskz_loadu_ps(k, lo_b + b);
    const __m512 widened = _mm512_sub_ps(hi, vrow_lo), allowed = _mm512_mul_ps(vspan, _mm512_sub_ps(hi, lo));
    one = one && (_mm512_mask_cmp_ps_mask(k, widened, allowed, _CMP_LE_OQ) == k);
  }
  // The codes from each block's offset lo, step d and its inverse; the blocks' meta
  // as {d, one, 0, lo}, four blocks per vector.
  const __m512 one_bits = _mm512_castsi512_ps(_mm512_set1_epi32(one ? 1 : 0));
  for (int64_t b = 0; b < nb; b += 16) {
    const __mmask16 k = first_lanes(nb - b);
    const __m512 lo = one ? vrow_lo : _mm512_maskz_loadu_ps(k, lo_b + b);
    const __m512 span = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, hi_b + b), lo);
    const __m512 vd = _mm512_div_ps(span, _mm512_set1_ps(255.0f));
    const __mmask16 nz = _mm512_cmp_ps_mask(vd, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    const __m512 vid = _mm512_maskz_div_ps(nz, _mm512_set1_ps(255.0f), span);
    const int64_t n = nb - b < 16 ? nb - b : 16;
    for (int q = 0; q < 4 && 4 * q < n; ++q) {
      const __m512i idx = _mm512_setr_epi32(0, 0, 0, 16, 1, 1, 1, 17, 2, 2, 2, 18, 3, 3, 3, 19);
      __m512 m = _mm512_maskz_permutex2var_ps(0x9999, vd, _mm512_add_epi32(idx, _mm512_set1_epi32(4 * q)), lo);
      m = _mm512_mask_mov_ps(m, 0x2222, one_bits);
      _mm512_mask_storeu_ps(reinterpret_cast<float*>(meta + b + 4 * q), first_lanes(4 * (n - 4 * q)), m);
    }
    const auto lane = [](__m512 v, int i) { return _mm512_permutexvar_ps(_mm512_set1_epi32(i), v); };
    for (int i = 0; i < n; i += 2) {
      const int64_t at = (b + i) * 32;
      const bool two = i + 1 < n;
      const __m512 v[4] = {load(at), load(at + 16), two ? load(at + 32) : _mm512_setzero_ps(),
                           two ? load(at + 48) : _mm512_setzero_ps()};
      const __m512i c = codes64(v, lane(lo, i), lane(vid, i), lane(lo, i + 1), lane(vid, i + 1));
      if (two)
        _mm512_storeu_si512(qs + at, c);
      else
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + at), _mm512_castsi512_si256(c));
      if (!suspect) continue;
      // A block with a NaN or an infinity: codes 0, d and c NaN (kernel_table.hpp).
      for (int h = 0; h < (two ? 2 : 1); ++h)
        if (_mm512_cmp_ps_mask(_mm512_sub_ps(v[2 * h], v[2 * h]), _mm512_sub_ps(v[2 * h + 1], v[2 * h + 1]),
                               _CMP_UNORD_Q) != 0) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + at + 32 * h), _mm256_setzero_si256());
          meta[b + i + h] = ActBlock{NAN, one ? 1 : 0, 0.0f, NAN};
        }
    }
  }
}

// ---- integer path -----------------------------------------------------------------------

// One row of x against row group g (GEMV: decoding): two product chains per block.
template <Family F, bool BF16>
inline void gemv_int(const Packed& w, const ActQ8& x, int64_t g, int64_t m, float* y, int64_t ldy, int nvalid) {
  const int64_t nb = x.K / 32;
  const uint8_t* grp = group_ptr(w, g);
  __m512 acc = _mm512_setzero_ps();
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
      const int8_t* xq = x.qs + m * x.K + kb * 32;
      const ActBlock a = x.meta[m * nb + kb];
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
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(a.d)), acc);
      if constexpr (F == kAffine4) acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(a.ds), acc);
    }
  }
  store_rows(y + m * ldy + g * 16, acc, nvalid);
}

// Chunk c (k = 4c..4c+3 of the 16 rows) of a sub-block as vpdpbusd's unsigned
// operand: q8 codes + 128, or 4-bit codes 0..15.
template <Family F>
inline __m512i chunk_u8(const uint8_t* sub, int c) {
  if constexpr (F == kQ8) return _mm512_xor_si512(chunk<F>(sub, c), _mm512_set1_epi8(char(0x80)));
  return chunk<F>(sub, c);
}
// ... as vpdpbusd's signed operand: the weights' values (q8 codes, 4-bit codes - 8).
template <Family F>
inline __m512i chunk_s8(const uint8_t* sub, int c) {
  if constexpr (F == kQ8) return chunk<F>(sub, c);
  return _mm512_sub_epi8(chunk<F>(sub, c), _mm512_set1_epi8(8));
}

// MR rows of x (starting at m) against NG row groups from g: per 4 k, NG weight
// vectors and MR activation broadcasts feed MR * NG vpdpbusd (loads, not products,
// limit these kernels on some AVX-512 CPUs: each broadcast serves NG groups).
template <Family F, bool BF16, int MR, int NG>
inline void tile_int(const Packed& w, const ActQ8& x, int64_t g, int64_t m, float* y, int64_t ldy) {
  const int64_t nb = x.K / 32;
  const uint8_t* grp[NG];
  for (int j = 0; j < NG; ++j) grp[j] = group_ptr(w, g + j);
  __m512 acc[MR][NG];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NG; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t s = 0; s < w.scale_groups; ++s) {
    __m512 dw[NG], mw[NG];
    for (int j = 0; j < NG; ++j) {
      const uint8_t* sg = grp[j] + size_t(s) * w.scale_group_bytes;
      dw[j] = load_scales<BF16>(sg);
      mw[j] = F == kAffine4 ? load_scales<BF16>(sg + 32) : _mm512_setzero_ps();
    }
    for (int b = 0; b < w.bps; ++b) {
      const size_t off = size_t(s) * w.scale_group_bytes + w.header_bytes + size_t(b) * w.sub_block_bytes;
      const int64_t kb = s * w.bps + b;
      __m512i isum[MR][NG];
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NG; ++j) isum[r][j] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) {
        __m512i wc[NG];
        for (int j = 0; j < NG; ++j) wc[j] = chunk_u8<F>(grp[j] + off, c);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
          const __m512i xb = bcast4(x.qs + (m + r) * x.K + kb * 32 + 4 * c);
          for (int j = 0; j < NG; ++j) isum[r][j] = _mm512_dpbusd_epi32(isum[r][j], wc[j], xb);
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const ActBlock a = x.meta[(m + r) * nb + kb];
        const __m512 da = _mm512_set1_ps(a.d);
        for (int j = 0; j < NG; ++j) {
          __m512i is = isum[r][j];
          if constexpr (F == kSym4) is = _mm512_sub_epi32(is, _mm512_set1_epi32(8 * a.s));
          if constexpr (F == kQ8) is = _mm512_sub_epi32(is, _mm512_set1_epi32(128 * a.s));
          acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(dw[j], da), acc[r][j]);
          if constexpr (F == kAffine4) acc[r][j] = _mm512_fmadd_ps(mw[j], _mm512_set1_ps(a.ds), acc[r][j]);
        }
      }
    }
  }
  for (int j = 0; j < NG; ++j) {
    const int64_t left = w.rows - (g + j) * 16;
    const int nvalid = int(left < 16 ? left : 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) store_rows(y + (m + r) * ldy + (g + j) * 16, acc[r][j], nvalid);
  }
}

constexpr int kMR = 4;  // rows of x per tile, against 2 row groups

// ---- integer path on arranged weights (many rows) ----------------------------------------
//
// For enough rows of x, NG row groups are first arranged (arrange_int) into a
// thread-local buffer that stays in L1/L2 while every row passes: per 32-k block,
// chunk c of group j at (c * NG + j) * 64 as vpdpbusd's unsigned operand (q8 codes +
// 128, or 4-bit codes unpacked), then NG x 16 fp32 scales (and, affine, NG x 16 fp32
// mins). The tile then needs no xor, unpacking or scale conversion, and 4 rows x 3
// groups keep 12 products in flight per 7 loads. The code offset (-128 or -8 times the
// block's activation sum) seeds the integer sums, so results stay bit for bit those
// of the scalar reference.
// Asymmetric activations (unsigned bytes) swap the operands: the weights are arranged
// as signed values (q8 codes, 4-bit codes - 8), so no offset is removed; each block
// also holds NG x 16 fp32 weight sums (code sum times scale: for rows with an offset
// per block), and after the last block come NG x 16 fp32 sums over all blocks (added
// block after block: for rows with one offset, multiplied by it once).

template <Family F, bool Asym>
constexpr size_t arranged_block_bytes(int ng) {
  return size_t(ng) * (512 + (F == kAffine4 || Asym ? 128 : 64));
}
// All of K's blocks, then (asymmetric activations) NG x 16 fp32 weight sums.
template <Family F, bool Asym>
constexpr size_t arranged_bytes(int64_t nb, int ng) {
  return size_t(nb) * arranged_block_bytes<F, Asym>(ng) + (Asym ? size_t(ng) * 64 : 0);
}

template <Family F, bool BF16, int NG, bool Asym>
void arrange_int(const Packed& w, int64_t g, uint8_t* out) {
  const int64_t nb = w.cols / 32;
  for (int64_t kb = 0; kb < nb; ++kb) {
    const int64_t s = kb / w.bps, b = kb % w.bps;
    uint8_t* dst = out + size_t(kb) * arranged_block_bytes<F, Asym>(NG);
    for (int j = 0; j < NG; ++j) {
      const uint8_t* sg = group_ptr(w, g + j) + size_t(s) * w.scale_group_bytes;
      const uint8_t* sub = sg + w.header_bytes + size_t(b) * w.sub_block_bytes;
      __m512i wsum = _mm512_setzero_si512();
      for (int c = 0; c < 8; ++c) {
        const __m512i u = Asym ? chunk_s8<F>(sub, c) : chunk_u8<F>(sub, c);
        _mm512_store_si512(dst + (c * NG + j) * 64, u);
        if constexpr (Asym) wsum = _mm512_dpbusd_epi32(wsum, _mm512_set1_epi8(1), u);
      }
      const __m512 dw = load_scales<BF16>(sg);
      _mm512_store_ps(reinterpret_cast<float*>(dst + NG * 512 + j * 64), dw);
      if constexpr (F == kAffine4)
        _mm512_store_ps(reinterpret_cast<float*>(dst + NG * 576 + j * 64), load_scales<BF16>(sg + 32));
      if constexpr (Asym) {  // the block's weight sum, and the sum over blocks so far
        const __m512 fsum = _mm512_cvtepi32_ps(wsum);
        _mm512_store_ps(reinterpret_cast<float*>(dst + NG * 576 + j * 64), _mm512_mul_ps(dw, fsum));
        float* ws = reinterpret_cast<float*>(out + size_t(nb) * arranged_block_bytes<F, Asym>(NG) + j * 64);
        const __m512 prev = kb == 0 ? _mm512_setzero_ps() : _mm512_load_ps(ws);
        _mm512_store_ps(ws, _mm512_fmadd_ps(dw, fsum, prev));
      }
    }
  }
}

// MR rows of x from m against the NG arranged groups wa (first group g); seed holds
// per row (from m) and block the integer sums' starting value. Stored as
// gelu(y + bias) where the task asks for it (asymmetric activations only).
// PerBlock (asymmetric): some row has an offset per block, added block by block
// (the other rows' as 0, an exact no-op) instead of once after the last block.
template <Family F, int MR, int NG, bool Asym, bool PerBlock = false>
inline void tile_arranged(const uint8_t* wa, const ActQ8& x, const int32_t* seed, int64_t g, int64_t m,
                          int64_t rows, float* y, int64_t ldy, const float* bias, bool gelu) {
  const int64_t nb = x.K / 32;
  const int8_t* xr[MR];
  for (int r = 0; r < MR; ++r) xr[r] = x.qs + (m + r) * x.K;
  __m512 acc[MR][NG];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NG; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t kb = 0; kb < nb; ++kb) {
    const uint8_t* blk = wa + size_t(kb) * arranged_block_bytes<F, Asym>(NG);
    __m512i is[MR][NG];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512i s0 = F == kAffine4 || Asym ? _mm512_setzero_si512() : _mm512_set1_epi32(seed[r * nb + kb]);
      for (int j = 0; j < NG; ++j) is[r][j] = s0;
    }
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) {
      __m512i wc[NG];
      for (int j = 0; j < NG; ++j) wc[j] = _mm512_load_si512(blk + (c * NG + j) * 64);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512i xb = bcast4(xr[r] + kb * 32 + 4 * c);
        for (int j = 0; j < NG; ++j)  // asymmetric: unsigned activations, signed weights
          is[r][j] = Asym ? _mm512_dpbusd_epi32(is[r][j], xb, wc[j]) : _mm512_dpbusd_epi32(is[r][j], wc[j], xb);
      }
    }
    scale_block<F == kAffine4, MR, NG>(acc, is, reinterpret_cast<const float*>(blk + NG * 512), x.meta + m * nb + kb,
                                       nb);
    if constexpr (PerBlock) {
      const float* ws = reinterpret_cast<const float*>(blk + NG * 576);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const ActBlock& a = x.meta[(m + r) * nb + kb];
        const __m512 c = _mm512_set1_ps(a.s ? 0.0f : a.c);
        for (int j = 0; j < NG; ++j) acc[r][j] = _mm512_fmadd_ps(_mm512_load_ps(ws + 16 * j), c, acc[r][j]);
      }
    }
  }
  if constexpr (Asym) {  // a row's one offset times the weights' sum
    const float* ws = reinterpret_cast<const float*>(wa + size_t(nb) * arranged_block_bytes<F, Asym>(NG));
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const ActBlock& a = x.meta[(m + r) * nb];
      const __m512 c = _mm512_set1_ps(a.s ? a.c : 0.0f);
      for (int j = 0; j < NG; ++j) acc[r][j] = _mm512_fmadd_ps(_mm512_load_ps(ws + 16 * j), c, acc[r][j]);
    }
    bias_gelu_tile(acc, bias, gelu, g, rows);
  }
  store_tile(acc, y, ldy, m, g, rows);
}

constexpr int kMRA = 4;  // rows of x per arranged tile, against 3 row groups
// Rows from which arranging pays (bench_matmul, K = N = 4096: q8_0 gains from M = 8 on,
// 4-bit formats, whose arranged codes are twice their packed bytes, lose at M = 8).
template <Family F>
constexpr int64_t arrange_int_min_rows() {
  return F == kQ8 ? 8 : 16;
}

// Groups [g0, g1) NG at a time: arrange, then all rows of the task against them.
template <Family F, bool BF16, int NG, bool Asym>
void sweep_arranged(const Packed& w, const ActQ8& x, const GemmTask& t, const int32_t* seed, int64_t g0,
                    int64_t g1) {
  thread_local std::vector<uint8_t, AlignedAlloc<uint8_t>> wa;
  const size_t need = arranged_bytes<F, Asym>(x.K / 32, NG);
  if (wa.size() < need) wa.resize(need);
  const int64_t nb = x.K / 32;
  for (int64_t g = g0; g + NG <= g1; g += NG) {
    arrange_int<F, BF16, NG, Asym>(w, g, wa.data());
    auto tile = [&](auto mr, int64_t gg, int64_t m) {
      constexpr int MR = decltype(mr)::value;
      bool per_block = false;
      if constexpr (Asym)
        for (int r = 0; r < MR; ++r) per_block = per_block || x.meta[(m + r) * nb].s == 0;
      if (per_block)
        tile_arranged<F, MR, NG, Asym, true>(wa.data(), x, seed + (m - t.m0) * nb, gg, m, w.rows, t.y, t.ldy, t.bias,
                                             t.gelu);
      else
        tile_arranged<F, MR, NG, Asym>(wa.data(), x, seed + (m - t.m0) * nb, gg, m, w.rows, t.y, t.ldy, t.bias,
                                       t.gelu);
    };
    int64_t m = t.m0;
    for (; m + kMRA <= t.m1; m += kMRA) tile(std::integral_constant<int, kMRA>{}, g, m);
    tail_rows<kMRA - 1>(t.m1 - m, tile, g, m);
  }
}

template <Family F, bool BF16, bool Asym = false>
void gemm_arranged(const Packed& w, const ActQ8& x, const GemmTask& t) {
  const int64_t nb = x.K / 32;
  thread_local std::vector<int32_t, AlignedAlloc<int32_t>> seed;
  seed.resize(size_t((t.m1 - t.m0) * nb));  // (affine, asymmetric: unused, but never a null base pointer)
  if (F != kAffine4 && !Asym) {
    const int32_t offset = F == kQ8 ? 128 : 8;
    for (int64_t m = t.m0; m < t.m1; ++m)
      for (int64_t kb = 0; kb < nb; ++kb) seed[(m - t.m0) * nb + kb] = -offset * x.meta[m * nb + kb].s;
  }
  const int64_t n3 = (t.g1 - t.g0) / 3 * 3;
  sweep_arranged<F, BF16, 3, Asym>(w, x, t, seed.data(), t.g0, t.g0 + n3);
  if (t.g1 - t.g0 - n3 == 2) sweep_arranged<F, BF16, 2, Asym>(w, x, t, seed.data(), t.g0 + n3, t.g1);
  if (t.g1 - t.g0 - n3 == 1) sweep_arranged<F, BF16, 1, Asym>(w, x, t, seed.data(), t.g0 + n3, t.g1);
}

// Asymmetric activations: always on arranged groups (which carry the weight sums),
// whatever the number of rows (the encoder's GEMMs have many).
template <Family F, bool BF16>
void gemm_int_asym(const Packed& w, const ActQ8& x, const GemmTask& t) {
  gemm_arranged<F, BF16, true>(w, x, t);
}

template <Family F, bool BF16>
void gemm_int(const Packed& w, const ActQ8& x, const GemmTask& t) {
  // GEMV (one row): one group at a time; a second group gains nothing when nothing
  // is reused. Few rows: pairs of groups straight from the packed layout. Many rows:
  // groups arranged first (gemm_arranged).
  if (t.m1 - t.m0 == 1) {
    for (int64_t g = t.g0; g < t.g1; ++g)
      gemv_int<F, BF16>(w, x, g, t.m0, t.y, t.ldy, int(w.rows - g * 16 < 16 ? w.rows - g * 16 : 16));
    return;
  }
  if (t.m1 - t.m0 >= arrange_int_min_rows<F>()) return gemm_arranged<F, BF16>(w, x, t);
  const int64_t pairs_end = t.g0 + (t.g1 - t.g0) / 2 * 2;
  sweep_rows<kMR>(GemmTask{t.g0, pairs_end, t.m0, t.m1, t.y, t.ldy}, [&](auto mr, int64_t g, int64_t m) {
    if ((g - t.g0) % 2 == 0) tile_int<F, BF16, decltype(mr)::value, 2>(w, x, g, m, t.y, t.ldy);
  });
  if (pairs_end < t.g1)
    sweep_rows<kMR>(GemmTask{pairs_end, t.g1, t.m0, t.m1, t.y, t.ldy}, [&](auto mr, int64_t g, int64_t m) {
      tile_int<F, BF16, decltype(mr)::value, 1>(w, x, g, m, t.y, t.ldy);
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
  sweep_rows<kMR>(t, [&](auto mr, int64_t g, int64_t m) {
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
  t.quantize_act_asym = quantize_act_asym;
  t.gemm_int_asym[kSym4][0] = gemm_int_asym<kSym4, false>;
  t.gemm_int_asym[kSym4][1] = gemm_int_asym<kSym4, true>;
  t.gemm_int_asym[kQ8][0] = gemm_int_asym<kQ8, false>;
  t.gemm_int_asym[kQ8][1] = gemm_int_asym<kQ8, true>;
  t.asym_epilogue = true;
  fill_i16(t);
  fill_elementwise(t);
  fill_dense(t);
  fill_attention(t);
}

}  // namespace halfbyte::kernels::avx512
