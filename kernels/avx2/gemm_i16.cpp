// AVX2 kernels of the int16 path (kernel_table.hpp): activations quantized per
// 32-block to int16, weights widened from the packed layout to int16 pairs in
// registers, vpmaddwd (2 products per 32-bit lane). Bit for bit the scalar reference
// (scalar::gemm_i16).
//
// Why it pays on AVX2: without VNNI the int8 path spends sign + maddubs + madd + add
// on 4 k x 8 rows; int16 spends 2 madd + 2 add on the same, so it runs at about the
// int8 rate while keeping outlier channels (kernel_table.hpp). Without it, NoInt8
// layers (the encoder's LayerNorm-fed projections) took the fp32 FMA path.
//
// A 64-byte chunk of the packed matrix holds, per 32-bit lane (weight row), the
// codes of 4 consecutive k; it is taken as two ymm halves of 8 rows. Widening works
// on 16-bit words: q8: (w << 8) >> 8 is the int16 pair (k0, k2), w >> 8 the pair
// (k1, k3); 4-bit: the low nibbles give k0..k3 and the high nibbles k16..k19 the
// same way with masks. The activations are stored per 4-group as (x0, x2, x1, x3),
// so each pair is one 32-bit broadcast and no horizontal sum is needed.
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "avx2/simd_common.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::avx2 {
namespace {

// Bit-identical to scalar::quantize_act16: d = amax/32767, q = nearbyint(x * id).
void quantize_act16(const float* x, int64_t K, int16_t* qs, ActBlock* meta) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 zero = _mm256_setzero_ps();
  // packs_epi32 interleaves the 128-bit lanes: (a0..3 b0..3 | a4..7 b4..7); with
  // a = k 0..7 and b = k 8..15 this is k0-3, k8-11, k4-7, k12-15; the qword permute
  // restores k order, then a byte shuffle puts each 4-group as k0, k2, k1, k3.
  const __m256i order = _mm256_setr_epi8(0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15,  //
                                         0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15);
  for (int64_t b = 0; b < K / 32; ++b) {
    const float* xb = x + b * 32;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    if (non_finite(v[0], v[1], v[2], v[3])) {  // codes 0, d NaN (kernel_table.hpp)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * 32), _mm256_setzero_si256());
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * 32 + 16), _mm256_setzero_si256());
      meta[b] = ActBlock{NAN, 0, NAN};
      continue;
    }
    // max(a, b) returns b when either is NaN: NaN inputs are ignored as std::fmax does.
    const __m256 a01 = _mm256_max_ps(_mm256_and_ps(v[1], absmask), _mm256_max_ps(_mm256_and_ps(v[0], absmask), zero));
    const __m256 a23 = _mm256_max_ps(_mm256_and_ps(v[3], absmask), _mm256_max_ps(_mm256_and_ps(v[2], absmask), zero));
    const float amax = hmax(_mm256_max_ps(a01, a23));
    const float d = amax / 32767.0f;
    const float id = d != 0.0f ? 32767.0f / amax : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    // cvtps rounds to nearest even (default MXCSR), as nearbyint does. int16_t(q)
    // keeps the low 16 bits, which is what the scalar cast gives, also for the
    // overflowed conversions (0x80000000 -> 0): mask, then unsigned saturation.
    const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
    for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], vid));
    for (int h = 0; h < 2; ++h) {
      const __m256i p = _mm256_packus_epi32(_mm256_and_si256(q[2 * h], lo16), _mm256_and_si256(q[2 * h + 1], lo16));
      const __m256i r = _mm256_shuffle_epi8(_mm256_permute4x64_epi64(p, _MM_SHUFFLE(3, 1, 2, 0)), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * 32 + 16 * h), r);
    }
    const int32_t s = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    meta[b] = ActBlock{d, s, d * float(s)};
  }
}

// One row group (two 8-row halves) x MR activation rows starting at m, over all K.
template <Family F, bool BF, int MR>
void tile16(const Packed& w, const ActQ16& x, const GemmTask& t, int64_t g, int64_t m) {
  constexpr bool kAffine = F == kAffine4;
  const uint8_t* grp = group_ptr(w, g);
  const int64_t nb = x.K / 32;
  const int16_t* xq[MR];
  const ActBlock* xm[MR];
  for (int i = 0; i < MR; ++i) {
    xq[i] = x.qs + (m + i) * x.K;
    xm[i] = x.meta + (m + i) * nb;
  }
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t s = 0; s < w.scale_groups; ++s) {
    const uint8_t* sg = grp + size_t(s) * w.scale_group_bytes;
    for (int b = 0; b < w.bps; ++b) {
      const uint8_t* sub = sg + w.header_bytes + size_t(b) * w.sub_block_bytes;
      const int64_t kb = s * w.bps + b;
      __m256i is[MR][2];
      for (int i = 0; i < MR; ++i) is[i][0] = is[i][1] = _mm256_setzero_si256();
      // Adds one (k0,k2)/(k1,k3) weight pair set to every row: a02/a13 are the
      // positions of the activation pairs within the block.
      auto step = [&](const __m256i (&e)[2], const __m256i (&o)[2], int a02) {
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          const __m256i x02 = bcast4(xq[i] + kb * 32 + a02), x13 = bcast4(xq[i] + kb * 32 + a02 + 2);
          for (int h = 0; h < 2; ++h) {
            is[i][h] = _mm256_add_epi32(is[i][h], _mm256_madd_epi16(e[h], x02));
            is[i][h] = _mm256_add_epi32(is[i][h], _mm256_madd_epi16(o[h], x13));
            pin(is[i][h]);
          }
        }
      };
      if constexpr (F == kQ8) {
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
          __m256i e[2], o[2];
          for (int h = 0; h < 2; ++h) {
            const __m256i v = load256(sub + 64 * c + 32 * h);
            e[h] = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8);
            o[h] = _mm256_srai_epi16(v, 8);
          }
          step(e, o, 4 * c);
        }
      } else {
        const __m256i m4 = _mm256_set1_epi16(0x000F);
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          __m256i v[2], e[2], o[2];
          for (int h = 0; h < 2; ++h) {
            v[h] = load256(sub + 64 * c + 32 * h);
            e[h] = _mm256_and_si256(v[h], m4);
            o[h] = _mm256_and_si256(_mm256_srli_epi16(v[h], 8), m4);
          }
          step(e, o, 4 * c);
          for (int h = 0; h < 2; ++h) {
            e[h] = _mm256_and_si256(_mm256_srli_epi16(v[h], 4), m4);
            o[h] = _mm256_srli_epi16(v[h], 12);
          }
          step(e, o, 16 + 4 * c);
        }
      }
      const __m256 dw0 = load_scales8<BF>(sg), dw1 = load_scales8<BF>(sg + 16);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const ActBlock& ab = xm[i][kb];
        const __m256 d = _mm256_set1_ps(ab.d);
        for (int h = 0; h < 2; ++h) {
          __m256i isum = is[i][h];
          if constexpr (F == kSym4) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(8 * ab.s));
          acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(h ? dw1 : dw0, d), acc[i][h]);
          if constexpr (kAffine)
            acc[i][h] = _mm256_fmadd_ps(load_scales8<BF>(sg + 32 + 16 * h), _mm256_set1_ps(ab.ds), acc[i][h]);
        }
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int h = 0; h < 2; ++h) store8(t.y + (m + i) * t.ldy, g * 16 + 8 * h, w.rows, acc[i][h]);
}

// Few rows: the weights widened in the tile, a panel of groups at a time.
template <Family F, bool BF>
void gemm_i16_few(const Packed& w, const ActQ16& x, const GemmTask& t) {
  drive(
      w, t, [&](int64_t g, int64_t m) { tile16<F, BF, 1>(w, x, t, g, m); },
      [&](int64_t g, int64_t m) { tile16<F, BF, 2>(w, x, t, g, m); },
      [&](int64_t g, int64_t m) { tile16<F, BF, 3>(w, x, t, g, m); },
      [&](int64_t g, int64_t m) { tile16<F, BF, 4>(w, x, t, g, m); });
}

// ---- many rows: row groups widened once (arrange16), then every row against them ----
//
// Arranged group, per 32-k block: 16 steps h = 2c + (0: (k0, k2), 1: (k1, k3)) of 4 k,
// each 64 bytes: the int16 weight pairs of rows 0-7 then 8-15, in the order the
// activations are stored, so a step is one 32-bit broadcast per row and two vpmaddwd;
// q4_0 codes are stored minus 8 (the same integer sum as subtracting 8 s). Then 16 fp32
// scales (and, affine, 16 fp32 mins).
template <Family F>
constexpr size_t arranged16_bytes() {
  return 1024 + (F == kAffine4 ? 128 : 64);
}

template <Family F, bool BF>
void arrange16(const Packed& w, int64_t g, uint8_t* out) {
  const uint8_t* grp = group_ptr(w, g);
  const int64_t nb = w.cols / 32;
  const __m256i m4 = _mm256_set1_epi16(0x000F), eight = _mm256_set1_epi16(8);
  for (int64_t kb = 0; kb < nb; ++kb) {
    const int64_t s = kb / w.bps, b = kb % w.bps;
    const uint8_t* sg = grp + size_t(s) * w.scale_group_bytes;
    const uint8_t* sub = sg + w.header_bytes + size_t(b) * w.sub_block_bytes;
    uint8_t* dst = out + size_t(kb) * arranged16_bytes<F>();
    auto put = [&](int step, int h, __m256i v) {
      if constexpr (F == kSym4) v = _mm256_sub_epi16(v, eight);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 64 * step + 32 * h), v);
    };
    for (int h = 0; h < 2; ++h) {
      if constexpr (F == kQ8) {
        for (int c = 0; c < 8; ++c) {
          const __m256i v = load256(sub + 64 * c + 32 * h);
          put(2 * c, h, _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8));
          put(2 * c + 1, h, _mm256_srai_epi16(v, 8));
        }
      } else {
        for (int c = 0; c < 4; ++c) {
          const __m256i v = load256(sub + 64 * c + 32 * h);
          put(2 * c, h, _mm256_and_si256(v, m4));
          put(2 * c + 1, h, _mm256_and_si256(_mm256_srli_epi16(v, 8), m4));
          put(8 + 2 * c, h, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
          put(8 + 2 * c + 1, h, _mm256_srli_epi16(v, 12));
        }
      }
      float* sc = reinterpret_cast<float*>(dst + 1024);
      _mm256_storeu_ps(sc + 8 * h, load_scales8<BF>(sg + 16 * h));
      if constexpr (F == kAffine4) _mm256_storeu_ps(sc + 16 + 8 * h, load_scales8<BF>(sg + 32 + 16 * h));
    }
  }
}

// MR rows of x against one arranged group: 2 * MR integer sums per block, 2 * MR fp32
// accumulators (MR = 3 fills the 16 ymm registers with the weight pair and a broadcast).
template <Family F, int MR>
void tile16_arranged(const uint8_t* wa, const ActQ16& x, int64_t g, int64_t m, int64_t rows, float* y,
                     int64_t ldy) {
  const int64_t nb = x.K / 32;
  const int16_t* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = x.qs + (m + i) * x.K;
  const ActBlock* xm = x.meta + m * nb;
  // The fp32 sums live in L1 (one load and store per block): in registers, with the
  // 2 * MR integer sums, they would not leave room for MR = 4.
  alignas(32) float acc[MR][2][8];
  zero_sums(acc);
  for (int64_t kb = 0; kb < nb; ++kb) {
    const uint8_t* blk = wa + size_t(kb) * arranged16_bytes<F>();
    __m256i is[MR][2];
    for (int i = 0; i < MR; ++i) is[i][0] = is[i][1] = _mm256_setzero_si256();
#pragma GCC unroll 16
    for (int st = 0; st < 16; ++st) {
      const __m256i w0 = load256(blk + 64 * st), w1 = load256(blk + 64 * st + 32);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256i xb = bcast4(xr[i] + kb * 32 + 2 * st);
        is[i][0] = _mm256_add_epi32(is[i][0], _mm256_madd_epi16(w0, xb));
        is[i][1] = _mm256_add_epi32(is[i][1], _mm256_madd_epi16(w1, xb));
        pin(is[i][0]);
        pin(is[i][1]);
      }
    }
    const float* sc = reinterpret_cast<const float*>(blk + 1024);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const ActBlock& ab = xm[i * nb + kb];
      const __m256 d = _mm256_set1_ps(ab.d);
      for (int h = 0; h < 2; ++h) {
        __m256 a = _mm256_load_ps(acc[i][h]);
        a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[i][h]), _mm256_mul_ps(_mm256_loadu_ps(sc + 8 * h), d), a);
        if constexpr (F == kAffine4) a = _mm256_fmadd_ps(_mm256_loadu_ps(sc + 16 + 8 * h), _mm256_set1_ps(ab.ds), a);
        _mm256_store_ps(acc[i][h], a);
      }
    }
    __asm__ volatile("" ::: "memory");  // keeps acc in memory
  }
  for (int i = 0; i < MR; ++i)
    for (int h = 0; h < 2; ++h) store8(y + (m + i) * ldy, g * 16 + 8 * h, rows, _mm256_load_ps(acc[i][h]));
}

// A thread's buffer of arranged groups (64-byte aligned, kept across calls).
struct ArrangedBuf {
  uint8_t* p = nullptr;
  size_t n = 0;
  uint8_t* get(size_t need) {
    if (need > n) {
      std::free(p);
      p = static_cast<uint8_t*>(std::aligned_alloc(64, (need + 63) / 64 * 64));
      if (!p) {
        n = 0;
        throw std::bad_alloc();
      }
      n = need;
    }
    return p;
  }
  ~ArrangedBuf() { std::free(p); }
};

constexpr int kMRA16 = 4;                // rows of x per arranged tile
constexpr int64_t kArrangeMinRows16 = 8;  // from here widening once beats widening per tile
constexpr size_t kArrangedPanel = 256 * 1024;  // arranged groups per panel (L2; 96 KB measured slower)

template <Family F, bool BF>
void gemm_i16(const Packed& w, const ActQ16& x, const GemmTask& t) {
  if (t.m1 - t.m0 < kArrangeMinRows16) return gemm_i16_few<F, BF>(w, x, t);
  const size_t gbytes = size_t(x.K / 32) * arranged16_bytes<F>();
  const int64_t pg = gbytes < kArrangedPanel ? int64_t(kArrangedPanel / gbytes) : 1;
  thread_local ArrangedBuf buf;
  uint8_t* wa = buf.get(size_t(pg) * gbytes);
  for (int64_t p0 = t.g0; p0 < t.g1; p0 += pg) {
    const int64_t p1 = p0 + pg < t.g1 ? p0 + pg : t.g1;
    for (int64_t g = p0; g < p1; ++g) arrange16<F, BF>(w, g, wa + size_t(g - p0) * gbytes);
    const auto tile = [&](auto mr, int64_t g, int64_t m) {
      tile16_arranged<F, decltype(mr)::value>(wa + size_t(g - p0) * gbytes, x, g, m, w.rows, t.y, t.ldy);
    };
    int64_t m = t.m0;
    for (; m + kMRA16 <= t.m1; m += kMRA16)
      for (int64_t g = p0; g < p1; ++g) tile(std::integral_constant<int, kMRA16>{}, g, m);
    // The last 1-3 rows in one tile (a single text's 35 tokens leave 3).
    const int64_t rest = t.m1 - m;
    for (int64_t g = p0; g < p1 && rest > 0; ++g) tail_rows<kMRA16 - 1>(rest, tile, g, m);
  }
}

template <Family F>
void set16(KernelTable& t) {
  t.gemm_i16[F][0] = gemm_i16<F, false>;
  t.gemm_i16[F][1] = gemm_i16<F, true>;
}

}  // namespace

void fill_i16(KernelTable& t) {
  t.quantize_act16 = quantize_act16;
  set16<kSym4>(t);
  set16<kAffine4>(t);
  set16<kQ8>(t);
}

}  // namespace halfbyte::kernels::avx2
