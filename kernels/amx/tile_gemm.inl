// The integer-path GEMM on AMX tiles, written once against a tile layer and
// included inside the anonymous namespace of kernels/amx/gemm.cpp (Tiles = the
// intrinsics) and kernels/amx/gemm_emulated.cpp (Tiles = the C++ emulation of
// kernels/amx_tile_emu.cpp), both compiled with the AVX-512 flags. The includer
// provides <immintrin.h>, <cstring>, <new>, kernel_table.hpp, amx_tile.hpp and a
// tile layer with tile numbers as template arguments (the instructions encode them):
//   static void load_config(const TileConfig&);   static void store_config(TileConfig&);
//   template <int T> static void zero();
//   template <int T> static void load(const void* base, int64_t stride);
//   template <int T> static void store(void* base, int64_t stride);
//   template <int C, int A, int B> static void dot();   // C += A . B, signed bytes (TDPBSSD)
//
// Design (KERNELS.md items 12-14). The contract (kernel_table.hpp) fixes, per output
// and per 32-k block in order, acc = fma(float(isum), dw * d, acc) (+ the affine
// term): the block scales change every 32 k, so a tile product runs per block and
// AVX-512 applies the scales in between. One step covers up to 32 activation rows
// (m) x 32 weight rows (n, two row groups of the packed matrix) and, per block:
//   A0, A1  activation rows m..m+15, m+16..m+31: 32 int8 each (colsb 32, stride K)
//   B0, B1  the block's weights of the two row groups: 8 rows (k/4) x 64 bytes,
//           16 weight rows x 4 consecutive k per tile row. q8_0 sub-blocks are
//           stored that way already and load straight from the packed matrix;
//           4-bit ones are widened to int8 once per panel (below): the symmetric
//           formats' codes as code - 8 (-8..7), the affine ones' as 0..15.
//   C_ij    = 0, then += A_i . B_j (TDPBSSD, signed bytes)
// The four C tiles hold exact int32 sums (|sum| <= 32*128*128): for the symmetric
// formats sum (code - 8) * q = isum - 8 * s, the contract's corrected sum, with no
// correction left to apply. They are stored to a small buffer; each row m of C is
// one zmm over the 16 weight rows n, which AVX-512 turns into
//   acc = fma(float(isum), dw * d, acc);  affine: acc = fma(mw, ds, acc)
// with the very operations of the scalar and avx512 kernels, so the results are
// equal bit for bit.
//
// Tails. M: the last step of a range has r < 32 rows; the tile configuration gives
// A0/C0x min(r, 16) rows and A1/C1x the rest (none: those tiles are left
// unconfigured and unused), so no tile reads or writes past row m1. N: a range
// with an odd number of row groups ends on a one-group panel (B1, C01, C11 unused);
// the invalid rows of the last group are zero-padded in the packed matrix and
// masked at the final store.
//
// Tile configuration: loaded by the thread that runs the kernel and cached per
// thread (it stays loaded across calls, no system call, LDTILECFG only when the
// shape of a step changes). Because other code on the same thread (oneDNN under
// PyTorch, say) may reconfigure or release the tiles between two of our calls,
// each call reads the live configuration once (STTILECFG, a 64-byte store) and
// reloads if it is not ours.
//
// What this design leaves on the table: each tile product covers k = 32 (half the
// 64 bytes a tile row holds), and the scale epilogue costs AVX-512 work per block
// comparable to the tile work. The alternative (KERNELS.md item 14), to measure
// on an AMX machine: widen a weight panel to bf16 once (scales applied) and run
// TDPBF16PS over the whole k with fp32 accumulation in the tiles; not bit-exact with
// the integer contract (it is a float path), so it would sit beside this one.
// See docs/AMX.md.

// Tile roles (palette 1: tmm0..tmm7).
constexpr int kA0 = 0, kA1 = 1, kB0 = 2, kB1 = 3, kC00 = 4, kC01 = 5, kC10 = 6, kC11 = 7;
constexpr int kStepRows = 32;  // activation rows per step (two A tiles)

inline const uint8_t* group_at(const Packed& w, int64_t g) { return w.data + size_t(g) * w.row_group_bytes; }

// 16 scales (fp16 or bf16 bits) -> 16 floats (as kernels/avx512/gemm.cpp).
template <bool BF16>
inline __m512 scales16(const uint8_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

// ---- per-thread state ---------------------------------------------------------------

// The configuration this thread last loaded (palette 0: none / unknown).
thread_local TileConfig t_config;

// Around each call. On entry: forget the cached configuration if the live one
// differs (someone else's tiles). On exit: if someone else had loaded a
// configuration, load it again. Libraries that cache their own configuration per
// thread (ONNX Runtime's MLAS does) would otherwise run their next tile instruction
// on ours: #UD, SIGILL, seen with onnxruntime 1.32's int8 GEMM on the same thread.
// A thread found unconfigured, or with ours, keeps ours across calls (no
// LDTILECFG on the next one). Tile data is never preserved (no caller expects it).
template <class Tiles>
struct TileScope {
  TileConfig live;
  TileScope() {
    Tiles::store_config(live);
    if (std::memcmp(&live, &t_config, sizeof live) != 0) t_config = TileConfig{};
  }
  ~TileScope() {
    if (live.palette_id != 0 && std::memcmp(&live, &t_config, sizeof live) != 0) {
      Tiles::load_config(live);
      t_config = live;
    }
  }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;
};

// Configures the tiles for a step of r0 + r1 rows (r0 <= 16, r1 <= 16, r1 = 0:
// A1/C10/C11 unused). Tiles not in use stay unconfigured (rows = colsb = 0).
// (Compared in full with the cached one: the bf16 kernel's configurations have the
// same rows but other shapes.)
template <class Tiles>
void configure(int r0, int r1) {
  TileConfig c{};
  c.palette_id = 1;
  auto set = [&](int tile, int rows, int colsb) {
    c.rows[tile] = uint8_t(rows);
    c.colsb[tile] = uint16_t(rows ? colsb : 0);
  };
  set(kA0, r0, 32);
  set(kA1, r1, 32);
  set(kB0, 8, 64);
  set(kB1, 8, 64);
  set(kC00, r0, 64);
  set(kC01, r0, 64);
  set(kC10, r1, 64);
  set(kC11, r1, 64);
  if (std::memcmp(&c, &t_config, sizeof c) == 0) return;
  Tiles::load_config(c);
  t_config = c;
}

#include "panel_buffer.inl"

// The 4-bit weights of a panel (one or two row groups) widened to int8 (code - 8
// for the symmetric formats, code for the affine ones), per block kb and group j
// at (2 * kb + j) * 512: B-tile rows 0..3 hold k = 0..15 (the low nibbles), rows
// 4..7 k = 16..31 (the high ones). Reused by every step
// of the panel, so the unpacking is paid once per panel, not once per row of x.
// Per thread, kept across calls, grown to the largest K seen.
thread_local PanelBuffer t_panel;

template <Family F>
void widen_panel(const Packed& w, int64_t g, int ng, uint8_t* out) {
  const __m512i lo = _mm512_set1_epi8(0x0F);
  const __m512i bias = _mm512_set1_epi8(F == kSym4 ? 8 : 0);
  for (int j = 0; j < ng; ++j) {
    const uint8_t* grp = group_at(w, g + j);
    for (int64_t s = 0; s < w.scale_groups; ++s)
      for (int b = 0; b < w.bps; ++b) {
        const uint8_t* sub = grp + size_t(s) * w.scale_group_bytes + w.header_bytes + size_t(b) * w.sub_block_bytes;
        uint8_t* dst = out + size_t(2 * (s * w.bps + b) + j) * 512;
        for (int c = 0; c < 4; ++c) {
          const __m512i v = _mm512_loadu_si512(sub + 64 * c);
          _mm512_store_si512(dst + 64 * c, _mm512_sub_epi8(_mm512_and_si512(v, lo), bias));
          _mm512_store_si512(dst + 64 * (c + 4), _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), lo), bias));
        }
      }
  }
}

// ---- one step: rows [m, m + r) x row groups g (and g + 1 when ng == 2) -----------

template <class Tiles, Family F, bool BF16>
void step(const Packed& w, const ActQ8& x, int64_t g, int ng, int64_t m, int r, const uint8_t* wide,
          const GemmTask& t) {
  const int r0 = r < 16 ? r : 16, r1 = r - r0;
  configure<Tiles>(r0, r1);
  const int64_t nb = x.K / 32;
  alignas(64) int32_t isum[2][2][16][16];  // [A tile][B tile][row m][n]
  __m512 acc[kStepRows][2];
  for (int i = 0; i < r; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const uint8_t* grp[2] = {group_at(w, g), group_at(w, g + (ng - 1))};
  for (int64_t s = 0; s < w.scale_groups; ++s) {
    __m512 dw[2], mw[2];
    for (int j = 0; j < ng; ++j) {
      const uint8_t* sg = grp[j] + size_t(s) * w.scale_group_bytes;
      dw[j] = scales16<BF16>(sg);
      if constexpr (F == kAffine4) mw[j] = scales16<BF16>(sg + 32);
    }
    for (int b = 0; b < w.bps; ++b) {
      const int64_t kb = s * w.bps + b;
      const uint8_t* bt[2];
      for (int j = 0; j < 2; ++j) {
        if constexpr (F == kQ8)
          bt[j] = grp[j] + size_t(s) * w.scale_group_bytes + w.header_bytes + size_t(b) * w.sub_block_bytes;
        else
          bt[j] = wide + size_t(2 * kb + j) * 512;
      }
      const int8_t* xa = x.qs + m * x.K + kb * 32;
      Tiles::template load<kA0>(xa, x.K);
      Tiles::template load<kB0>(bt[0], 64);
      Tiles::template zero<kC00>();
      Tiles::template dot<kC00, kA0, kB0>();
      if (ng == 2) {
        Tiles::template load<kB1>(bt[1], 64);
        Tiles::template zero<kC01>();
        Tiles::template dot<kC01, kA0, kB1>();
      }
      if (r1 > 0) {
        Tiles::template load<kA1>(xa + 16 * x.K, x.K);
        Tiles::template zero<kC10>();
        Tiles::template dot<kC10, kA1, kB0>();
        if (ng == 2) {
          Tiles::template zero<kC11>();
          Tiles::template dot<kC11, kA1, kB1>();
        }
      }
      Tiles::template store<kC00>(isum[0][0], 64);
      if (ng == 2) Tiles::template store<kC01>(isum[0][1], 64);
      if (r1 > 0) {
        Tiles::template store<kC10>(isum[1][0], 64);
        if (ng == 2) Tiles::template store<kC11>(isum[1][1], 64);
      }
      // The scales, in the scalar kernel's order of operations.
      for (int i = 0; i < r; ++i) {
        const ActBlock a = x.meta[(m + i) * nb + kb];
        const __m512 d = _mm512_set1_ps(a.d);
        for (int j = 0; j < ng; ++j) {
          const __m512i v = _mm512_load_si512(isum[i >> 4][j][i & 15]);
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(dw[j], d), acc[i][j]);
          if constexpr (F == kAffine4) acc[i][j] = _mm512_fmadd_ps(mw[j], _mm512_set1_ps(a.ds), acc[i][j]);
        }
      }
    }
  }
  for (int j = 0; j < ng; ++j) {
    const int64_t left = w.rows - (g + j) * 16;
    const __mmask16 valid = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    for (int i = 0; i < r; ++i) _mm512_mask_storeu_ps(t.y + (m + i) * t.ldy + (g + j) * 16, valid, acc[i][j]);
  }
}

// ---- the kernel ----------------------------------------------------------------------

// Row groups are taken two at a time (a panel: 32 weight rows); every step of rows
// runs over a panel before the next one, so the panel (and its widened codes) stays
// in L2 while x streams past. Odd panels walk the steps backwards: the short last
// step of one panel and the first of the next share their tile configuration (one
// LDTILECFG per panel instead of two when M is not a multiple of 32), and the
// activation rows just used are still in cache.
template <class Tiles, Family F, bool BF16>
void gemm_tiles(const Packed& w, const ActQ8& x, const GemmTask& t) {
  if (t.g0 >= t.g1 || t.m0 >= t.m1) return;
  const TileScope<Tiles> scope;
  uint8_t* wide = nullptr;
  if constexpr (F != kQ8) wide = t_panel.get(size_t(x.K / 32) * 1024);
  const int64_t steps = (t.m1 - t.m0 + kStepRows - 1) / kStepRows;
  for (int64_t g = t.g0, p = 0; g < t.g1; g += 2, ++p) {
    const int ng = t.g1 - g >= 2 ? 2 : 1;
    if constexpr (F != kQ8) widen_panel<F>(w, g, ng, wide);
    for (int64_t i = 0; i < steps; ++i) {
      const int64_t m = t.m0 + kStepRows * ((p & 1) ? steps - 1 - i : i);
      const int r = int(t.m1 - m < kStepRows ? t.m1 - m : kStepRows);
      step<Tiles, F, BF16>(w, x, g, ng, m, r, wide, t);
    }
  }
}
