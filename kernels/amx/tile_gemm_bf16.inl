// The bf16 tile GEMM (KERNELS.md item 14), included after tile_gemm.inl (its tile
// roles, per-thread configuration cache and PanelBuffer) in kernels/amx/gemm.cpp
// and gemm_emulated.cpp. The tile layer also provides
//   template <int C, int A, int B> static void dot_bf16();   // C += A . B (TDPBF16PS)
//
// Why: the integer tile GEMM (tile_gemm.inl) must apply two scales per 32-k block,
// so every 4 tile products are followed by 4 tile stores and an AVX-512 epilogue as
// long as the products; measured on a Xeon (docs/AMX.md) it reaches ~1.5x avx512.
// Here the scales are applied once, when a panel of weights is widened to bf16
// (dw * (code - 8), dw * code + mw, dw * q8: rounded to nearest even), and the
// activations are rounded to bf16 once per call: TDPBF16PS then runs over the
// whole of K with the fp32 sums in the C tiles, and the only epilogue is one tile
// store per 16 x 16 outputs.
//
// Precision: not the integer contract. Each product is of two bf16 values (8
// significant bits: unit roundoff 2^-8 each, so the product is within 2^-7 + 2^-16
// relative of dw*q times x) and the sums are fp32: |y - y_exact| <= (2^-7 + 2^-16 +
// K * 2^-23) * sum_k |w_k x_k|, with y_exact the dequantized weights' product. That
// is tighter than the integer path (int8 activations lose up to amax/254 per
// element); tests/kernels/test_amx.cpp checks the bound on the emulated tiles and on
// the hardware.
//
// Blocking. Per task: its rows of x as bf16 A tiles (per 32-row step and 32-k block,
// 32 rows of 64 bytes together: a tile load reads 1 KB in one piece) in a per-thread
// buffer; weights in panels of as many row groups as fit in ~1 MB of bf16 (L2),
// widened once per task. For every step of 32 rows of x, the panel's groups two at a
// time: A0/A1 (rows m..m+15, m+16..m+31), B0/B1 (two groups: 16 rows of 2 k x 16
// weight rows each), C_ij += A_i . B_j over all of K. The 2 x 2 blocking (all 8
// tiles) loads one tile per product; the panel stays in L2 while x streams past.
//
// Tails as in tile_gemm.inl: a short last step configures A0/C0x with min(r, 16) rows
// and A1/C1x with the rest; an odd group count ends on a one-group pair; the padding
// rows of the last group are computed and masked at the store.

constexpr int64_t kBf16PanelBytes = int64_t(1) << 20;

// 16 + 16 floats -> 32 bf16 (lo in the low half): round to nearest even; NaN stays
// a (quiet) NaN instead of rounding up into the exponent. The emulated tile layer's
// bf16x32 (any AVX-512 CPU); the hardware's is VCVTNE2PS2BF16 (AVX512-BF16, which
// every AMX-BF16 CPU has; it also flushes subnormals to zero, as TDPBF16PS does).
inline __m512i to_bf16x32(__m512 lo, __m512 hi) {
  const auto round = [](__m512 v) {
    const __m512i b = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q),
                              _mm512_or_si512(b, _mm512_set1_epi32(0x00400000)));
    return _mm512_srli_epi32(r, 16);
  };
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(round(lo))),
                            _mm512_cvtepi32_epi16(round(hi)), 1);
}

// One 64-byte chunk of int8 weights (byte 4n + i: weight row n, k = k0 + i) scaled
// and widened into the two B-tile rows of k0 (bf16 pairs k0, k0+1 per n) and k0 + 2.
// dlo/dhi: the rows' scales as (d0, d0, d1, d1, ..., d7, d7) and (d8, d8, ..., d15,
// d15); mlo/mhi the mins likewise (affine formats).
template <class Tiles, bool Affine>
inline void widen_chunk_bf16(__m512i v, __m512 dlo, __m512 dhi, __m512 mlo, __m512 mhi, uint8_t* row0) {
  // Words (2 bytes: k0,k0+1 or k0+2,k0+3) even first, then odd.
  const __m512i idx = _mm512_set_epi16(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1,  //
                                       30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i p = _mm512_permutexvar_epi16(idx, v);
  for (int h = 0; h < 2; ++h) {
    const __m256i half = h ? _mm512_extracti64x4_epi64(p, 1) : _mm512_castsi512_si256(p);
    __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(half)));
    __m512 b = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(half, 1)));
    if constexpr (Affine) {
      a = _mm512_fmadd_ps(a, dlo, mlo);
      b = _mm512_fmadd_ps(b, dhi, mhi);
    } else {
      a = _mm512_mul_ps(a, dlo);
      b = _mm512_mul_ps(b, dhi);
    }
    _mm512_store_si512(row0 + 64 * h, Tiles::bf16x32(a, b));
  }
}

// Row group g of w as bf16 B tiles: block kb at out + kb * 1024, 16 rows of 64 bytes.
template <class Tiles, Family F, bool BF16>
void widen_group_bf16(const Packed& w, int64_t g, uint8_t* out) {
  const __m512i lo4 = _mm512_set1_epi8(0x0F);
  const __m512i bias = _mm512_set1_epi8(F == kSym4 ? 8 : 0);
  const __m512i dup_lo = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  const __m512i dup_hi = _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
  const uint8_t* grp = group_at(w, g);
  for (int64_t s = 0; s < w.scale_groups; ++s) {
    const uint8_t* sg = grp + size_t(s) * w.scale_group_bytes;
    const __m512 d = scales16<BF16>(sg);
    const __m512 dlo = _mm512_permutexvar_ps(dup_lo, d), dhi = _mm512_permutexvar_ps(dup_hi, d);
    __m512 mlo = _mm512_setzero_ps(), mhi = _mm512_setzero_ps();
    if constexpr (F == kAffine4) {
      const __m512 mn = scales16<BF16>(sg + 32);
      mlo = _mm512_permutexvar_ps(dup_lo, mn);
      mhi = _mm512_permutexvar_ps(dup_hi, mn);
    }
    for (int b = 0; b < w.bps; ++b) {
      const uint8_t* sub = sg + w.header_bytes + size_t(b) * w.sub_block_bytes;
      uint8_t* dst = out + size_t(s * w.bps + b) * 1024;
      if constexpr (F == kQ8) {
        for (int c = 0; c < 8; ++c)  // chunk c: k = 4c..4c+3 -> B rows 2c, 2c+1
          widen_chunk_bf16<Tiles, false>(_mm512_loadu_si512(sub + 64 * c), dlo, dhi, mlo, mhi, dst + 128 * c);
      } else {
        for (int c = 0; c < 4; ++c) {  // low nibbles: k = 4c.., high nibbles: k = 16 + 4c..
          const __m512i v = _mm512_loadu_si512(sub + 64 * c);
          const __m512i low = _mm512_sub_epi8(_mm512_and_si512(v, lo4), bias);
          const __m512i high = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), lo4), bias);
          widen_chunk_bf16<Tiles, F == kAffine4>(low, dlo, dhi, mlo, mhi, dst + 128 * c);
          widen_chunk_bf16<Tiles, F == kAffine4>(high, dlo, dhi, mlo, mhi, dst + 512 + 128 * c);
        }
      }
    }
  }
}

// x rows [m0, m1) as bf16 A tiles: step s (32 rows), block kb at out + (s * nb + kb) *
// 1024: 32 rows of 32 bf16 (64 bytes), so a tile load reads 1 KB in one piece (not 16
// rows a whole K apart: 16 pages per load at K = 2048 and more). nb = K / 32 rounded
// up: a last partial block (float weights) is padded with zeros.
template <class Tiles>
void activations_bf16(const ActF32& x, int64_t K, int64_t m0, int64_t m1, uint16_t* out) {
  const int64_t full = K / 32, nb = (K + 31) / 32;
  const int tail = int(K - full * 32);
  const __mmask16 mlo = tail >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << tail) - 1u);
  const __mmask16 mhi = tail > 16 ? __mmask16((1u << (tail - 16)) - 1u) : __mmask16(0);
  for (int64_t m = m0; m < m1; ++m) {
    const float* xr = x.x + m * x.ldx;
    const int64_t i = m - m0;
    uint16_t* o = out + (i / 32) * nb * 1024 + (i % 32) * 32;
    for (int64_t kb = 0; kb < full; ++kb)
      _mm512_store_si512(o + kb * 1024,
                         Tiles::bf16x32(_mm512_loadu_ps(xr + kb * 32), _mm512_loadu_ps(xr + kb * 32 + 16)));
    if (tail)
      _mm512_store_si512(o + full * 1024, Tiles::bf16x32(_mm512_maskz_loadu_ps(mlo, xr + full * 32),
                                                         _mm512_maskz_loadu_ps(mhi, xr + full * 32 + 16)));
  }
}

template <class Tiles>
void configure_bf16(int r0, int r1) {
  TileConfig c{};
  c.palette_id = 1;
  auto set = [&](int tile, int rows) {
    c.rows[tile] = uint8_t(rows);
    c.colsb[tile] = uint16_t(rows ? 64 : 0);
  };
  set(kA0, r0);
  set(kA1, r1);
  set(kB0, 16);
  set(kB1, 16);
  set(kC00, r0);
  set(kC01, r0);
  set(kC10, r1);
  set(kC11, r1);
  if (std::memcmp(&c, &t_config, sizeof c) == 0) return;
  Tiles::load_config(c);
  t_config = c;
}

// C tile T (rows x 16 fp32) to y rows at `y` (stride ldy floats), `valid` columns.
template <class Tiles, int T>
void store_c(float* y, int64_t ldy, int rows, int valid) {
  if (valid == 16) {
    Tiles::template store<T>(y, ldy * int64_t(sizeof(float)));
    return;
  }
  alignas(64) float tmp[16 * 16];
  Tiles::template store<T>(tmp, 64);
  const __mmask16 mask = __mmask16((1u << valid) - 1u);
  for (int i = 0; i < rows; ++i) _mm512_mask_storeu_ps(y + i * ldy, mask, _mm512_load_ps(tmp + 16 * i));
}

// Rows [m, m + r) of x (xb: their bf16 A tiles, activations_bf16) against groups b0
// and b1 (the widened panels; b1 null: one group) over all of K (nb blocks); y at row
// m, the column of b0's first weight row, `valid0/1` columns of each group.
// (Splitting K into chunks whose A tiles stay in L1, with the partial sums stored and
// reloaded per chunk, measured slower: 1.80-1.83 TOP/s against 1.9-2.16 at M512.)
template <class Tiles>
void step_bf16(const uint16_t* xb, int64_t nb, const uint8_t* b0, const uint8_t* b1, int r, float* y, int64_t ldy,
               int valid0, int valid1) {
  const int r0 = r < 16 ? r : 16, r1 = r - r0;
  configure_bf16<Tiles>(r0, r1);
  Tiles::template zero<kC00>();
  if (b1) Tiles::template zero<kC01>();
  if (r1) {
    Tiles::template zero<kC10>();
    if (b1) Tiles::template zero<kC11>();
  }
  for (int64_t kb = 0; kb < nb; ++kb) {
    Tiles::template load<kA0>(xb + kb * 1024, 64);
    Tiles::template load<kB0>(b0 + kb * 1024, 64);
    Tiles::template dot_bf16<kC00, kA0, kB0>();
    if (b1) {
      Tiles::template load<kB1>(b1 + kb * 1024, 64);
      Tiles::template dot_bf16<kC01, kA0, kB1>();
    }
    if (r1) {
      Tiles::template load<kA1>(xb + kb * 1024 + 512, 64);
      Tiles::template dot_bf16<kC10, kA1, kB0>();
      if (b1) Tiles::template dot_bf16<kC11, kA1, kB1>();
    }
  }
  store_c<Tiles, kC00>(y, ldy, r0, valid0);
  if (b1) store_c<Tiles, kC01>(y + 16, ldy, r0, valid1);
  if (r1) {
    store_c<Tiles, kC10>(y + 16 * ldy, ldy, r1, valid0);
    if (b1) store_c<Tiles, kC11>(y + 16 * ldy + 16, ldy, r1, valid1);
  }
}

thread_local PanelBuffer t_bf16_panel;
thread_local PanelBuffer t_bf16_x;

// The blocking above for any weights: widen(g, out) writes row group g of W (16 rows
// of n_rows, zero past them) as bf16 B tiles, block kb at out + kb * 1024, for the K
// (rounded up to 32) of x.
template <class Tiles, class Widen>
void tiles_bf16(int64_t K, int64_t n_rows, const ActF32& x, const GemmTask& t, Widen&& widen) {
  if (t.g0 >= t.g1 || t.m0 >= t.m1) return;
  const TileScope<Tiles> scope;
  const int64_t nb = (K + 31) / 32, rows = t.m1 - t.m0;
  const int64_t steps = (rows + kStepRows - 1) / kStepRows;
  auto* xb = reinterpret_cast<uint16_t*>(t_bf16_x.get(size_t(steps * kStepRows * nb * 32) * sizeof(uint16_t)));
  activations_bf16<Tiles>(x, K, t.m0, t.m1, xb);
  const int64_t group_bytes = nb * 1024;
  int64_t per_panel = kBf16PanelBytes / group_bytes;
  per_panel = per_panel < 2 ? 2 : (per_panel > 16 ? 16 : per_panel & ~int64_t(1));
  uint8_t* panel = t_bf16_panel.get(size_t(per_panel * group_bytes));
  auto valid = [&](int64_t g) {
    const int64_t left = n_rows - g * 16;
    return int(left >= 16 ? 16 : left);
  };
  for (int64_t g = t.g0; g < t.g1; g += per_panel) {
    const int64_t ng = t.g1 - g < per_panel ? t.g1 - g : per_panel;
    for (int64_t j = 0; j < ng; ++j) widen(g + j, panel + j * group_bytes);
    for (int64_t m = t.m0; m < t.m1; m += kStepRows) {
      const int r = int(t.m1 - m < kStepRows ? t.m1 - m : kStepRows);
      for (int64_t j = 0; j < ng; j += 2) {
        const bool two = j + 1 < ng;
        step_bf16<Tiles>(xb + (m - t.m0) * nb * 32, nb, panel + j * group_bytes,
                         two ? panel + (j + 1) * group_bytes : nullptr, r, t.y + m * t.ldy + (g + j) * 16, t.ldy,
                         valid(g + j), two ? valid(g + j + 1) : 0);
      }
    }
  }
}

template <class Tiles, Family F, bool BF16>
void gemm_tiles_bf16(const Packed& w, const ActF32& x, const GemmTask& t) {
  tiles_bf16<Tiles>(w.cols, w.rows, x, t,
                    [&](int64_t g, uint8_t* out) { widen_group_bf16<Tiles, F, BF16>(w, g, out); });
}
