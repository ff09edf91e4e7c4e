// The tile GEMM of kernels/amx/tile_gemm.inl on the C++ emulation of the tile
// instructions (kernels/amx_tile_emu.cpp): the same blocking, packing and tail
// logic as the amx kernels, runnable on any AVX-512 CPU. For tests only (it is
// far slower than avx512); compiled with the AVX-512 flags but not the AMX ones,
// so no tile instruction can slip in.
#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "amx_tile.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::amx {
namespace {

struct EmuTiles {
  static void load_config(const TileConfig& c) { emu::ldtilecfg(&c); }
  static void store_config(TileConfig& c) { emu::sttilecfg(&c); }
  template <int T>
  static void zero() { emu::tilezero(T); }
  template <int T>
  static void load(const void* p, int64_t stride) { emu::tileloadd(T, p, stride); }
  template <int T>
  static void store(void* p, int64_t stride) { emu::tilestored(T, p, stride); }
  template <int C, int A, int B>
  static void dot() { emu::tdpbssd(C, A, B); }
  template <int C, int A, int B>
  static void dot_bf16() { emu::tdpbf16ps(C, A, B); }
  static __m512i bf16x32(__m512 lo, __m512 hi);
};

#include "tile_gemm.inl"
#include "tile_gemm_bf16.inl"
#include "tile_gemm_dense.inl"
#include "exp_ps512.inl"
#include "tile_attention.inl"

__m512i EmuTiles::bf16x32(__m512 lo, __m512 hi) { return to_bf16x32(lo, hi); }

#include "fill.inl"

}  // namespace

// The bf16 design unless int8_tiles_asked(), as on an AMX-BF16 CPU (the emulation
// needs no AMX-BF16 nor AVX512-BF16).
void fill_emulated(KernelTable& t) { fill_tiles<EmuTiles>(t, !int8_tiles_asked()); }

GemmIntFn emulated_tile_gemm_int(Family f, bool bf16) { return int_tiles_for<EmuTiles>(f, bf16); }

GemmFloatFn emulated_tile_gemm_bf16(Family f, bool bf16) { return bf16_tiles_for<EmuTiles>(f, bf16); }

GemmDenseFn emulated_tile_gemm_dense(DenseType t) { return dense_tiles_for<EmuTiles>(t); }

AttendBlockFn emulated_tile_attend_block(bool f16) { return attend_block_for<EmuTiles>(f16); }

}  // namespace halfbyte::kernels::amx
