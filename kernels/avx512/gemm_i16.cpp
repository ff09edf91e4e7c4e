// AVX-512 VNNI kernels of the int16 path (kernel_table.hpp): activations quantized
// per 32-block to int16, weights widened from the packed layout to int16 in
// registers, vpdpwssd (2 products per 32-bit lane). Bit for bit the scalar
// reference (scalar::gemm_i16).
//
// A packed 64-byte chunk holds, per lane (weight row), the 4 codes of k = 4c..4c+3.
// Shifting 16-bit words widens them without a shuffle: (w << 8) >> 8 gives the
// int16 pair (k0, k2), w >> 8 the pair (k1, k3); the activations are stored per
// 4-group as (x0, x2, x1, x3), so each pair is one 32-bit broadcast.
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "avx512/simd_common.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::avx512 {
namespace {

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

void quantize_act16(const float* x, int64_t K, int16_t* qs, ActBlock* meta) {
  // Lane order within each 4-group: k0, k2, k1, k3 (act16_index).
  const __m512i order = _mm512_setr_epi32(0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15);
  for (int64_t b = 0; b < K / 32; ++b) {
    __m512i q0, q1;
    const float d = quantize_block(x + b * 32, 32767.0f, q0, q1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * 32),
                        _mm512_cvtepi32_epi16(_mm512_permutexvar_epi32(order, q0)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * 32 + 16),
                        _mm512_cvtepi32_epi16(_mm512_permutexvar_epi32(order, q1)));
    const int32_t s = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    meta[b] = ActBlock{d, s, d * float(s)};
  }
}

// Row n of a group as the sum of a lane pair of (lo, hi): the lane pairs of lo hold
// rows 4L, 4L+1 of each 128-bit lane L, those of hi rows 4L+2, 4L+3 (unpacklo/hi).
inline __m512i pair_index(int which) {
  alignas(64) int32_t idx[16];
  for (int n = 0; n < 16; ++n) {
    const int L = n / 4, t = n % 4;
    idx[n] = (t < 2 ? 0 : 16) + 2 * (2 * L + t % 2) + which;
  }
  return _mm512_load_si512(idx);
}

// One row group's weights arranged for the tile (arrange_group): per 32-k block,
// per 4 k (c), two vectors of int16 in which a lane pair holds one row's 4 weights
// (k0 k2 | k1 k3); lo holds rows 4L, 4L+1 of each 128-bit lane L, hi rows 4L+2,
// 4L+3. 1 KB per block.
template <Family F>
void arrange_group(const Packed& w, int64_t g, int16_t* out) {
  const uint8_t* grp = group_ptr(w, g);
  for (int64_t s = 0; s < w.scale_groups; ++s)
    for (int b = 0; b < w.bps; ++b) {
      const uint8_t* sub = grp + size_t(s) * w.scale_group_bytes + w.header_bytes + size_t(b) * w.sub_block_bytes;
      int16_t* dst = out + (s * w.bps + b) * 512;
      for (int c = 0; c < 8; ++c) {
        const __m512i v = chunk<F>(sub, c);
        const __m512i e = _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8);  // (k0, k2)
        const __m512i o = _mm512_srai_epi16(v, 8);                         // (k1, k3)
        _mm512_store_si512(dst + 64 * c, _mm512_unpacklo_epi32(e, o));
        _mm512_store_si512(dst + 64 * c + 32, _mm512_unpackhi_epi32(e, o));
      }
    }
}

// MR rows of x (starting at m) against row group g: its weights arranged in wa
// (Arranged) or widened and arranged here from the packed group (for few rows,
// where arranging first would cost more than it saves). Per 4 k: two
// weight loads and ONE 64-bit broadcast per row of its 4 activations (stored x0 x2
// x1 x3) feed two vpdpwssd per row (16 rows x 4 k): loads, the scarce resource on
// some AVX-512 CPUs (one per cycle), are 2 + MR per 2 MR products.
template <Family F, bool BF16, int MR, bool Arranged>
inline void tile_i16(const Packed& w, const int16_t* wa, const ActQ16& x, int64_t g, int64_t m, float* y,
                     int64_t ldy, int nvalid, __m512i even_idx, __m512i odd_idx) {
  const int64_t nb = x.K / 32;
  const uint8_t* grp = group_ptr(w, g);
  __m512 acc[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t s = 0; s < w.scale_groups; ++s) {
    const uint8_t* sg = grp + size_t(s) * w.scale_group_bytes;
    const __m512 dw = load_scales<BF16>(sg);
    __m512 mw = _mm512_setzero_ps();
    if constexpr (F == kAffine4) mw = load_scales<BF16>(sg + 32);
    for (int b = 0; b < w.bps; ++b) {
      const int64_t kb = s * w.bps + b;
      const int16_t* wb = Arranged ? wa + kb * 512 : nullptr;  // (wa is null otherwise)
      const uint8_t* sub = sg + w.header_bytes + size_t(b) * w.sub_block_bytes;
      __m512i lo[MR], hi[MR];
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) {
        __m512i wl, wh;
        if constexpr (Arranged) {
          wl = _mm512_load_si512(wb + 64 * c);
          wh = _mm512_load_si512(wb + 64 * c + 32);
        } else {
          const __m512i v = chunk<F>(sub, c);
          const __m512i e = _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8), o = _mm512_srai_epi16(v, 8);
          wl = _mm512_unpacklo_epi32(e, o);
          wh = _mm512_unpackhi_epi32(e, o);
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
          int64_t q4;
          std::memcpy(&q4, x.qs + (m + r) * x.K + kb * 32 + 4 * c, 8);  // x0 x2 x1 x3
          const __m512i xb = _mm512_set1_epi64(q4);
          lo[r] = _mm512_dpwssd_epi32(lo[r], wl, xb);
          hi[r] = _mm512_dpwssd_epi32(hi[r], wh, xb);
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const ActBlock a = x.meta[(m + r) * nb + kb];
        __m512i isum = _mm512_add_epi32(_mm512_permutex2var_epi32(lo[r], even_idx, hi[r]),
                                        _mm512_permutex2var_epi32(lo[r], odd_idx, hi[r]));
        if constexpr (F == kSym4) isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(8 * a.s));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(a.d)), acc[r]);
        if constexpr (F == kAffine4) acc[r] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a.ds), acc[r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) store_rows(y + (m + r) * ldy + g * 16, acc[r], nvalid);
}

constexpr int kMR16 = 8;  // rows of x per tile: 16 vpdpwssd chains

// Rows from which a group's weights are arranged once for all rows (the widening
// in the tile costs about as much as arranging from ~13 rows on).
constexpr int64_t kArrangeMinRows = 16;

template <Family F, bool BF16, bool Arranged>
void sweep_i16(const Packed& w, const ActQ16& x, const GemmTask& t) {
  const __m512i even_idx = pair_index(0), odd_idx = pair_index(1);
  thread_local std::vector<int16_t, AlignedAlloc<int16_t>> wa;
  if (Arranged && wa.size() < size_t(x.K) * 16) wa.resize(size_t(x.K) * 16);
  for (int64_t g = t.g0; g < t.g1; ++g) {
    if constexpr (Arranged) arrange_group<F>(w, g, wa.data());
    const int nvalid = int(w.rows - g * 16 < 16 ? w.rows - g * 16 : 16);
    auto tile = [&](auto mr, int64_t gg, int64_t m) {
      tile_i16<F, BF16, decltype(mr)::value, Arranged>(w, wa.data(), x, gg, m, t.y, t.ldy, nvalid, even_idx,
                                                        odd_idx);
    };
    int64_t m = t.m0;
    for (; m + kMR16 <= t.m1; m += kMR16) tile(std::integral_constant<int, kMR16>{}, g, m);
    tail_rows<kMR16 - 1>(t.m1 - m, tile, g, m);
  }
}

// Per row group: its weights arranged once (16 rows x K int16, L1-sized) when
// there are enough rows, then every row of x against it.
template <Family F, bool BF16>
void gemm_i16(const Packed& w, const ActQ16& x, const GemmTask& t) {
  if (t.m1 - t.m0 >= kArrangeMinRows)
    sweep_i16<F, BF16, true>(w, x, t);
  else
    sweep_i16<F, BF16, false>(w, x, t);
}

}  // namespace

void fill_i16(KernelTable& t) {
  t.quantize_act16 = quantize_act16;
  t.gemm_i16[kSym4][0] = gemm_i16<kSym4, false>;
  t.gemm_i16[kSym4][1] = gemm_i16<kSym4, true>;
  t.gemm_i16[kAffine4][0] = gemm_i16<kAffine4, false>;
  t.gemm_i16[kAffine4][1] = gemm_i16<kAffine4, true>;
  t.gemm_i16[kQ8][0] = gemm_i16<kQ8, false>;
  t.gemm_i16[kQ8][1] = gemm_i16<kQ8, true>;
}

}  // namespace halfbyte::kernels::avx512
