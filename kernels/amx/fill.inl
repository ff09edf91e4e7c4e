// The amx kernel table on one tile layer (HwTiles: the instructions, amx/gemm.cpp;
// EmuTiles: their C++ emulation, amx/gemm_emulated.cpp), included by both inside
// their anonymous namespace after the tile kernels, so that the "amx" and
// "amx_emulated" ISAs are the same code on different tiles.

template <class Tiles>
GemmIntFn int_tiles_for(Family f, bool bf16) {
  static const GemmIntFn fns[kFamilies][2] = {
      {gemm_tiles<Tiles, kSym4, false>, gemm_tiles<Tiles, kSym4, true>},
      {gemm_tiles<Tiles, kAffine4, false>, gemm_tiles<Tiles, kAffine4, true>},
      {gemm_tiles<Tiles, kQ8, false>, gemm_tiles<Tiles, kQ8, true>}};
  return fns[f][bf16 ? 1 : 0];
}

template <class Tiles>
GemmFloatFn bf16_tiles_for(Family f, bool bf16) {
  static const GemmFloatFn fns[kFamilies][2] = {
      {gemm_tiles_bf16<Tiles, kSym4, false>, gemm_tiles_bf16<Tiles, kSym4, true>},
      {gemm_tiles_bf16<Tiles, kAffine4, false>, gemm_tiles_bf16<Tiles, kAffine4, true>},
      {gemm_tiles_bf16<Tiles, kQ8, false>, gemm_tiles_bf16<Tiles, kQ8, true>}};
  return fns[f][bf16 ? 1 : 0];
}

// HALFBYTE_AMX_GEMM=int8 keeps the integer tile GEMM where the bf16 one would run (to
// measure one design against the other).
inline bool int8_tiles_asked() {
  const char* e = std::getenv("HALFBYTE_AMX_GEMM");
  return e && std::strcmp(e, "int8") == 0;
}

// avx512's integer GEMMs, for tasks with fewer rows than kMinTileRows.
GemmIntFn g_below[kFamilies][2];

template <class Tiles, Family F, bool BF16>
void gemm_int_from_tile_rows(const Packed& w, const ActQ8& x, const GemmTask& t) {
  if (t.m1 - t.m0 < kMinTileRows) {
    g_below[F][BF16](w, x, t);
    return;
  }
  gemm_tiles<Tiles, F, BF16>(w, x, t);
}

// t holds avx512's table. bf16_tiles: the bf16 designs (quantized and float weights,
// prompt attention) from kMinBf16Rows rows; always: the integer GEMM from kMinTileRows.
template <class Tiles>
void fill_tiles(KernelTable& t, bool bf16_tiles) {
  if (bf16_tiles) {
    for (int f = 0; f < kFamilies; ++f)
      for (int bf = 0; bf < 2; ++bf) t.gemm_tile[f][bf] = bf16_tiles_for<Tiles>(Family(f), bf != 0);
    for (int d = 0; d < kDenseTypes; ++d) t.gemm_tile_dense[d] = dense_tiles_for<Tiles>(DenseType(d));
    // HALFBYTE_AMX_ATTENTION=avx512 keeps avx512's attention (to measure one against the
    // other): its vdpbf16ps kernel where the CPU has AVX512_BF16, else fp32.
    const char* att = std::getenv("HALFBYTE_AMX_ATTENTION");
    if (!(att && std::strcmp(att, "avx512") == 0)) {
      t.attend_block_bf16[0] = attend_block_for<Tiles>(false);
      t.attend_block_bf16[1] = attend_block_for<Tiles>(true);
    }
    t.tile_min_rows = kMinBf16Rows;
  }
  for (int f = 0; f < kFamilies; ++f)
    for (int bf = 0; bf < 2; ++bf) g_below[f][bf] = t.gemm_int[f][bf];
  t.gemm_int[kSym4][0] = gemm_int_from_tile_rows<Tiles, kSym4, false>;
  t.gemm_int[kSym4][1] = gemm_int_from_tile_rows<Tiles, kSym4, true>;
  t.gemm_int[kAffine4][0] = gemm_int_from_tile_rows<Tiles, kAffine4, false>;
  t.gemm_int[kAffine4][1] = gemm_int_from_tile_rows<Tiles, kAffine4, true>;
  t.gemm_int[kQ8][0] = gemm_int_from_tile_rows<Tiles, kQ8, false>;
  t.gemm_int[kQ8][1] = gemm_int_from_tile_rows<Tiles, kQ8, true>;
}
