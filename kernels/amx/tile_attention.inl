// Prompt attention on bf16 tiles (issue #9, item 3: the prefill products QK^T and PV
// through TDPBF16PS), included after tile_gemm_bf16.inl (its tile roles, per-thread
// configuration cache, PanelBuffer, configure_bf16) in kernels/amx/gemm.cpp and
// gemm_emulated.cpp. Contract: kernel_table.hpp's AttnBlockArgs.
//
// Per call (T tokens x `group` heads = T group query rows, row m = token m / group,
// head m % group; the last token sees nk = n0 + T - 1 keys):
//   K as bf16 B tiles, per 16 keys and 32 head dims: row p holds the pairs
//     (k_j[d], k_j[d + 1]), d = 2p, for the 16 keys j (from the cache's tiles of 32
//     keys, where dim d of 32 keys is contiguous: two loads and a interleave);
//   V as bf16 B tiles, per 32 keys and 16 head dims: row p holds the pairs
//     (v_2p[d], v_2p+1[d]) for the 16 dims d; keys past nk are zero.
// Then per step of 16 query rows: their q as A tiles (32 dims per tile), scores =
// q . K^T per 16 keys (one C tile, hd / 32 products), stored in fp32; per row the
// softmax over its own keys (causal: the rest are zero) in fp32, the weights rounded
// to bf16 and stored as A tiles (32 keys per tile), their sum taken from the rounded
// values; out = (P . V) / sum per 16 dims (one C tile, a product per 32 keys).
//
// Precision (tests/kernels/test_amx_attention.cpp): q, k, v and the weights are
// rounded to bf16 (unit roundoff 2^-8), products and sums are fp32. A score moves by
// at most E = scale (2^-7 + 2^-16 + hd 2^-23) sum_d |q_d k_d|, so a softmax weight by
// a factor within exp(+-2E); with the rounding of the weights and of V:
//   |out_d - out*_d| <= (exp(2 E_max) - 1 + 2^-6 + nk 2^-23) sum_j p*_j |v_jd|.

constexpr int64_t kAttnRows = 16;  // query rows per step (one A tile)

#include "dense16.inl"

// (a0, b0, a1, b1, ..., a15, b15) rounded to 32 bf16.
template <class Tiles>
inline __m512i pairs_bf16(__m512 a, __m512 b) {
  const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  return Tiles::bf16x32(_mm512_permutex2var_ps(a, lo, b), _mm512_permutex2var_ps(a, hi, b));
}

inline __mmask16 att_first(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

// 32 bf16 (as stored) back to fp32, summed into acc.
inline __m512 add_bf16x32(__m512 acc, __m512i v) {
  const __m512i lo = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16);
  const __m512i hi = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16);
  return _mm512_add_ps(acc, _mm512_add_ps(_mm512_castsi512_ps(lo), _mm512_castsi512_ps(hi)));
}

thread_local PanelBuffer t_att_k, t_att_v, t_att_q, t_att_s, t_att_p;

template <class Tiles, bool F16>
void attend_block_tiles(const AttnBlockArgs& a) {
  if (a.T <= 0 || a.group <= 0) return;
  const TileScope<Tiles> scope;
  const int64_t hd = a.hd, nd32 = hd / 32, nd16 = hd / 16;
  const int64_t nk_max = a.n0 + a.T - 1;
  const int64_t nkb16 = (nk_max + 15) / 16, nkb32 = (nk_max + 31) / 32, lds = nkb32 * 32;
  uint8_t* kb = t_att_k.get(size_t(nkb16 * nd32) * 1024);
  uint8_t* vb = t_att_v.get(size_t(nkb32 * nd16) * 1024);
  uint8_t* qb = t_att_q.get(size_t(nd32) * 1024);
  uint8_t* pb = t_att_p.get(size_t(nkb32) * 1024);
  float* sb = reinterpret_cast<float*>(t_att_s.get(size_t(kAttnRows * lds) * sizeof(float)));

  // K: block (b, db) at kb + (b nd32 + db) 1024. Keys up to 16 nkb16 lie within the
  // cache's last tile of 32 (readable; scores past a row's keys are never used).
  for (int64_t b = 0; b < nkb16; ++b) {
    const int64_t base = (b * 16 / kKeyTile) * hd * kKeyTile + (b * 16) % kKeyTile;
    for (int64_t db = 0; db < nd32; ++db)
      for (int p = 0; p < 16; ++p) {
        const int64_t d = db * 32 + 2 * p;
        _mm512_store_si512(kb + (b * nd32 + db) * 1024 + p * 64,
                           pairs_bf16<Tiles>(dense16<F16 ? kDenseF16 : kDenseF32>(a.kt, base + d * kKeyTile),
                                             dense16<F16 ? kDenseF16 : kDenseF32>(a.kt, base + (d + 1) * kKeyTile)));
      }
  }
  // V: block (b, c) at vb + (b nd16 + c) 1024; rows past nk_max are not read (zero).
  for (int64_t b = 0; b < nkb32; ++b)
    for (int p = 0; p < 16; ++p) {
      const int64_t j = b * 32 + 2 * p;
      for (int64_t c = 0; c < nd16; ++c) {
        const __m512 v0 = j < nk_max ? dense16<F16 ? kDenseF16 : kDenseF32>(a.v, j * a.ldv + c * 16) : _mm512_setzero_ps();
        const __m512 v1 = j + 1 < nk_max ? dense16<F16 ? kDenseF16 : kDenseF32>(a.v, (j + 1) * a.ldv + c * 16) : _mm512_setzero_ps();
        _mm512_store_si512(vb + (b * nd16 + c) * 1024 + p * 64, pairs_bf16<Tiles>(v0, v1));
      }
    }

  const int64_t rows = int64_t(a.T) * a.group;
  for (int64_t m0 = 0; m0 < rows; m0 += kAttnRows) {
    const int r = int(rows - m0 < kAttnRows ? rows - m0 : kAttnRows);
    const int64_t nk_step = a.n0 + (m0 + r - 1) / a.group;  // the step's last row sees the most keys
    const int64_t sb16 = (nk_step + 15) / 16, sb32 = (nk_step + 31) / 32;
    configure_bf16<Tiles>(r, 0);  // A0, C00: r rows; B0: 16 rows; 64 bytes each
    for (int i = 0; i < r; ++i) {
      const int64_t m = m0 + i;
      const float* q = a.q + (m / a.group) * a.ldq + (m % a.group) * hd;
      for (int64_t db = 0; db < nd32; ++db)
        _mm512_store_si512(qb + db * 1024 + i * 64,
                           Tiles::bf16x32(_mm512_loadu_ps(q + db * 32), _mm512_loadu_ps(q + db * 32 + 16)));
    }
    for (int64_t b = 0; b < sb16; ++b) {
      Tiles::template zero<kC00>();
      for (int64_t db = 0; db < nd32; ++db) {
        Tiles::template load<kA0>(qb + db * 1024, 64);
        Tiles::template load<kB0>(kb + (b * nd32 + db) * 1024, 64);
        Tiles::template dot_bf16<kC00, kA0, kB0>();
      }
      Tiles::template store<kC00>(sb + b * 16, lds * int64_t(sizeof(float)));
    }
    float inv[kAttnRows];
    const __m512 scale = _mm512_set1_ps(a.scale);
    for (int i = 0; i < r; ++i) {
      const int64_t nk = a.n0 + (m0 + i) / a.group;
      const float* s = sb + i * lds;
      __m512 mx = _mm512_set1_ps(-INFINITY);
      for (int64_t j = 0; j < nk; j += 16) mx = _mm512_mask_max_ps(mx, att_first(nk - j), mx, _mm512_loadu_ps(s + j));
      const __m512 shift = _mm512_mul_ps(_mm512_set1_ps(_mm512_reduce_max_ps(mx)), scale);
      __m512 sum = _mm512_setzero_ps();
      for (int64_t b = 0; b < sb32; ++b) {
        const int64_t j = b * 32;
        // Lanes past the row's keys: zero (whatever the scores buffer holds there).
        const __m512 e0 = _mm512_maskz_mov_ps(att_first(nk - j), exp_ps(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), scale, shift)));
        const __m512 e1 =
            _mm512_maskz_mov_ps(att_first(nk - j - 16), exp_ps(_mm512_fmsub_ps(_mm512_loadu_ps(s + j + 16), scale, shift)));
        const __m512i w = Tiles::bf16x32(e0, e1);
        _mm512_store_si512(pb + b * 1024 + i * 64, w);
        sum = add_bf16x32(sum, w);
      }
      inv[i] = 1.0f / _mm512_reduce_add_ps(sum);
    }
    for (int64_t c = 0; c < nd16; ++c) {
      Tiles::template zero<kC00>();
      for (int64_t b = 0; b < sb32; ++b) {
        Tiles::template load<kA0>(pb + b * 1024, 64);
        Tiles::template load<kB0>(vb + (b * nd16 + c) * 1024, 64);
        Tiles::template dot_bf16<kC00, kA0, kB0>();
      }
      alignas(64) float tmp[kAttnRows * 16];
      Tiles::template store<kC00>(tmp, 64);
      for (int i = 0; i < r; ++i) {
        const int64_t m = m0 + i;
        float* o = a.out + (m / a.group) * a.ldo + (m % a.group) * hd + c * 16;
        _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_load_ps(tmp + i * 16), _mm512_set1_ps(inv[i])));
      }
    }
  }
}

template <class Tiles>
AttendBlockFn attend_block_for(bool f16) {
  return f16 ? attend_block_tiles<Tiles, true> : attend_block_tiles<Tiles, false>;
}
