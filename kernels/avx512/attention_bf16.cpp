// Prompt attention (AttnBlockArgs) with AVX512_BF16 dot products (vdpbf16ps: two
// bf16 products per fp32 lane, twice the multiply-adds of an fp32 FMA). Built with
// -mavx512bf16 (kernels/CMakeLists.txt); dispatch.cpp offers it only where the CPU
// has AVX512_BF16 (Zen 4 and later, Cooper Lake, Sapphire Rapids).
//
// Per call (one run of tokens and one KV head): K and V of the keys the run sees as
// bf16 pairs that vdpbf16ps multiplies (K: dims 2p, 2p + 1 of 16 keys per vector; V:
// keys 2j, 2j + 1 of 16 dims per vector), rounded once per call where it has more
// than one block of query rows, else as they are used. Then per block of 16 query
// rows (token, head): q rounded to bf16, the scores (fp32 sums, times scale), softmax
// in fp32 (each row over the keys its token sees), its weights rounded to bf16, and
// P.V with fp32 sums divided by the fp32 sum of the weights. A row's result depends on
// its own query and keys only (not on the call's other rows or its split into
// blocks): a token gets the same bits decoded alone, in a batch or in a prompt.
// The same rounding as amx's tiles (kernel_table.hpp): the caller uses it only where
// a layer's products are not fp32 already; bound in tests/kernels/attention_bf16_check.hpp.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <new>

#include "kernel_table.hpp"

namespace halfbyte::kernels::avx512 {
namespace {

// Internal linkage throughout, and no inline function of a shared header is
// called here (see kernels/CMakeLists.txt).

#include "exp_ps512.inl"
#include "panel_buffer.inl"

inline __mmask16 first(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? 0 : __mmask16((1u << n) - 1u); }

inline __m512 load16(const float* p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
inline __m512 load16(const uint16_t* p, __mmask16 k) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p)); }

// Lane i: bf16(a_i) in its low half, bf16(b_i) in its high half (round to nearest even).
inline __m512i pair_bf16(__m512 a, __m512 b) {
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i packed = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));  // a's 16, then b's
  return _mm512_permutexvar_epi16(_mm512_load_si512(kInterleave), packed);
}

// 16 floats as 8 bf16 pairs (lane p: elements 2p, 2p + 1).
inline void store_bf16(__m512 x, uint32_t* out) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x)));
}

// The bf16 pairs of K and V that vdpbf16ps multiplies, for keys [0, nk) of a run:
//   k(j, p): dims 2p, 2p + 1 of keys j .. j + 15 (lane i: (k_{j+i}[2p], k_{j+i}[2p+1]));
//   v(jp, d): keys 2 jp, 2 jp + 1 of dims d .. d + 15 (lane i: (v_2jp[d+i], v_2jp+1[d+i])).
// Keys from nk on are zero (the cache's padding may hold anything). FlyPairs rounds
// them from the cache as they are used (K tiled as [tile][hd][kKeyTile], V rows at
// ldv); PrePairs reads the same values rounded once per call (pre_pairs): both give
// every row the same bits, whatever else the call holds.
template <class T>
struct FlyPairs {
  const T* kt;
  const T* vr;  // V's first row
  int64_t ldv, nk;
  int hd;
  __m512bh k(int64_t j, int p) const {
    const __mmask16 m = first(nk - j);
    const T* base = kt + (j / kKeyTile) * hd * kKeyTile + j % kKeyTile;
    return reinterpret_cast<__m512bh>(pair_bf16(load16(base + 2 * p * kKeyTile, m), load16(base + (2 * p + 1) * kKeyTile, m)));
  }
  __m512bh v(int64_t jp, int d) const {
    const T* r0 = vr + 2 * jp * ldv + d;
    const __mmask16 second = 2 * jp + 1 < nk ? __mmask16(0xFFFF) : __mmask16(0);
    return reinterpret_cast<__m512bh>(pair_bf16(load16(r0, 0xFFFF), load16(r0 + ldv, second)));
  }
};

struct PrePairs {
  const uint32_t* kp;  // [nk / 16][hd / 2][16]
  const uint32_t* vp;  // [nk / 2][hd]
  int hd;
  __m512bh k(int64_t j, int p) const {
    return reinterpret_cast<__m512bh>(_mm512_load_si512(kp + ((j / 16) * (hd / 2) + p) * 16));
  }
  __m512bh v(int64_t jp, int d) const { return reinterpret_cast<__m512bh>(_mm512_load_si512(vp + jp * hd + d)); }
};

// fly's pairs into kp and vp (nk rounded up to 32 keys: (nk32 hd / 2) each).
template <class T>
PrePairs pre_pairs(const FlyPairs<T>& fly, uint32_t* kp, uint32_t* vp) {
  const int hp = fly.hd / 2;
  for (int64_t j = 0; j < fly.nk; j += 16)
    for (int p = 0; p < hp; ++p) _mm512_store_si512(kp + ((j / 16) * hp + p) * 16, reinterpret_cast<__m512i>(fly.k(j, p)));
  for (int64_t jp = 0; 2 * jp < fly.nk; ++jp)
    for (int d = 0; d < fly.hd; d += 16) _mm512_store_si512(vp + jp * fly.hd + d, reinterpret_cast<__m512i>(fly.v(jp, d)));
  return PrePairs{kp, vp, fly.hd};
}

// s[r][j .. j + 16 NK) = scale * q_r . k_j for MR rows of qp (bf16 pairs, hp per row).
template <int MR, int NK, class Src>
inline void score_tile(const Src& src, const uint32_t* qp, int hp, int64_t j, float scale, float* s, int64_t lds) {
  __m512 acc[MR][NK];
  for (int r = 0; r < MR; ++r)
    for (int i = 0; i < NK; ++i) acc[r][i] = _mm512_setzero_ps();
  for (int p = 0; p < hp; ++p) {
    __m512bh k[NK];
    for (int i = 0; i < NK; ++i) k[i] = src.k(j + 16 * i, p);
    for (int r = 0; r < MR; ++r) {
      const __m512bh qb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(int(qp[r * hp + p])));
      for (int i = 0; i < NK; ++i) acc[r][i] = _mm512_dpbf16_ps(acc[r][i], qb, k[i]);
    }
  }
  const __m512 sc = _mm512_set1_ps(scale);
  for (int r = 0; r < MR; ++r)
    for (int i = 0; i < NK; ++i) _mm512_storeu_ps(s + r * lds + j + 16 * i, _mm512_mul_ps(acc[r][i], sc));
}

constexpr int kScoreRows = 8;

template <int MR, class Src>
void scores(const Src& src, const uint32_t* qp, int hp, int64_t n_keys, float scale, float* s, int64_t lds) {
  for (int64_t j = 0; j < n_keys; j += 32) {
    if (n_keys - j > 16)
      score_tile<MR, 2>(src, qp, hp, j, scale, s, lds);
    else
      score_tile<MR, 1>(src, qp, hp, j, scale, s, lds);
  }
}

template <int MR, class Src>
void scores_upto(int mr, const Src& src, const uint32_t* qp, int hp, int64_t n_keys, float scale, float* s,
                 int64_t lds) {
  if constexpr (MR > 1) {
    if (mr < MR) return scores_upto<MR - 1>(mr, src, qp, hp, n_keys, scale, s, lds);
  }
  scores<MR>(src, qp, hp, n_keys, scale, s, lds);
}

// Row s over keys [0, nv): its weights exp(s - max) as bf16 pairs into pp for keys
// [0, n) (zero from nv on; n a multiple of 16 >= nv); returns their fp32 sum.
float softmax_row(const float* s, int64_t nv, int64_t n, uint32_t* pp) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < nv; j += 16) mx = _mm512_mask_max_ps(mx, first(nv - j), mx, _mm512_loadu_ps(s + j));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = first(nv - j);
    const __m512 e = _mm512_maskz_mov_ps(k, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), m)));
    sum = _mm512_add_ps(sum, e);
    store_bf16(e, pp + j / 2);
  }
  return _mm512_reduce_add_ps(sum);
}

// out[r][d0 .. d0 + 16 NV) = inv[r] sum_jp pp[r][jp] . v(jp) for MR rows (ldp pairs per
// row of pp), over `pairs` pairs of keys.
template <int MR, int NV, class Src>
inline void pv_tile(const Src& src, const uint32_t* pp, int64_t ldp, int64_t pairs, int d0, const float* inv,
                    float* const* out) {
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int i = 0; i < NV; ++i) acc[r][i] = _mm512_setzero_ps();
  for (int64_t jp = 0; jp < pairs; ++jp) {
    __m512bh v[NV];
    for (int i = 0; i < NV; ++i) v[i] = src.v(jp, d0 + 16 * i);
    for (int r = 0; r < MR; ++r) {
      const __m512bh p = reinterpret_cast<__m512bh>(_mm512_set1_epi32(int(pp[r * ldp + jp])));
      for (int i = 0; i < NV; ++i) acc[r][i] = _mm512_dpbf16_ps(acc[r][i], p, v[i]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    const __m512 s = _mm512_set1_ps(inv[r]);
    for (int i = 0; i < NV; ++i) _mm512_storeu_ps(out[r] + d0 + 16 * i, _mm512_mul_ps(acc[r][i], s));
  }
}

template <int MR, class Src>
void pv_rows(const Src& src, int hd, const uint32_t* pp, int64_t ldp, int64_t pairs, const float* inv, float* const* out) {
  for (int d0 = 0; d0 < hd; d0 += 64) {
    if (hd - d0 >= 64)
      pv_tile<MR, 4>(src, pp, ldp, pairs, d0, inv, out);
    else  // (hd a multiple of 32)
      pv_tile<MR, 2>(src, pp, ldp, pairs, d0, inv, out);
  }
}

template <int MR, class Src>
void pv_upto(int mr, const Src& src, int hd, const uint32_t* pp, int64_t ldp, int64_t pairs, const float* inv,
             float* const* out) {
  if constexpr (MR > 1) {
    if (mr < MR) return pv_upto<MR - 1>(mr, src, hd, pp, ldp, pairs, inv, out);
  }
  pv_rows<MR>(src, hd, pp, ldp, pairs, inv, out);
}

// Query rows per block: row m is token m / group, head m % group (a decoding token's
// heads are one block).
constexpr int kBlockRows = 16;

// Per thread: the call's K and V pairs (when rounded once), a block's q pairs, scores
// and weights.
thread_local PanelBuffer t_pairs, t_block;

// Rows [0, T group) in blocks of kBlockRows, each scored over the keys its last row sees.
template <class Src>
void attend_rows(const AttnBlockArgs& b, const Src& src, int64_t lds) {
  const int hd = b.hd, hp = hd / 2;
  const int64_t ldp = lds / 2, rows = int64_t(b.T) * b.group;
  uint8_t* blk = t_block.get(size_t(kBlockRows) * (size_t(hp) + size_t(lds) + size_t(ldp)) * 4);
  uint32_t* qp = reinterpret_cast<uint32_t*>(blk);
  float* s = reinterpret_cast<float*>(qp + kBlockRows * hp);
  uint32_t* pp = reinterpret_cast<uint32_t*>(s + kBlockRows * lds);
  float inv[kBlockRows];
  float* out[kBlockRows];
  for (int64_t m0 = 0; m0 < rows; m0 += kBlockRows) {
    const int rb = int(std::min<int64_t>(kBlockRows, rows - m0));
    const int64_t n_keys = b.n0 + (m0 + rb - 1) / b.group;  // what the block's last row sees
    const int64_t n16 = (n_keys + 15) / 16 * 16, pairs = (n_keys + 1) / 2;
    for (int r = 0; r < rb; ++r) {
      const int64_t i = (m0 + r) / b.group, h = (m0 + r) % b.group;
      const float* q = b.q + i * b.ldq + h * hd;
      for (int d = 0; d < hd; d += 16) store_bf16(_mm512_loadu_ps(q + d), qp + r * hp + d / 2);
      out[r] = b.out + i * b.ldo + h * hd;
    }
    for (int r0 = 0; r0 < rb; r0 += kScoreRows)
      scores_upto<kScoreRows>(std::min(kScoreRows, rb - r0), src, qp + r0 * hp, hp, n_keys, b.scale, s + r0 * lds, lds);
    for (int r = 0; r < rb; ++r)  // token i sees n0 + i keys
      inv[r] = 1.0f / softmax_row(s + r * lds, b.n0 + (m0 + r) / b.group, n16, pp + r * ldp);
    for (int r0 = 0; r0 < rb; r0 += 4)
      pv_upto<4>(std::min(4, rb - r0), src, hd, pp + r0 * ldp, ldp, pairs, inv + r0, out + r0);
  }
}

template <class T>
void attend_block_bf16(const AttnBlockArgs& b) {
  if (b.T <= 0 || b.group <= 0) return;
  const int64_t nk = b.n0 + b.T - 1;           // keys the run's last token sees
  const int64_t nk32 = (nk + 31) / 32 * 32;    // rows of scores and weights: keys rounded up
  const FlyPairs<T> fly{static_cast<const T*>(b.kt), static_cast<const T*>(b.v), b.ldv, nk, b.hd};
  if (int64_t(b.T) * b.group <= kBlockRows) return attend_rows(b, fly, nk32);  // (decoding: one block)
  uint32_t* kp = reinterpret_cast<uint32_t*>(t_pairs.get(size_t(nk32 * b.hd) * sizeof(uint32_t)));
  attend_rows(b, pre_pairs(fly, kp, kp + nk32 * (b.hd / 2)), nk32);
}

}  // namespace

AttendBlockFn bf16_attend_block(bool f16) { return f16 ? attend_block_bf16<uint16_t> : attend_block_bf16<float>; }

}  // namespace halfbyte::kernels::avx512
