// The amx kernel set: the avx512 table with the integer GEMM on AMX tiles for
// tasks of at least kMinTileRows activation rows (kernels/amx/tile_gemm.inl);
// GEMV and short GEMMs stay on the avx512 kernels. Where the CPU has AMX-BF16, also
// the bf16 tile GEMM for quantized (tile_gemm_bf16.inl) and float weights
// (tile_gemm_dense.inl) and the prompt attention (tile_attention.inl). Compiled
// with the AVX-512 and AMX flags; runs only where dispatch.cpp found AMX-TILE +
// AMX-INT8 and Linux granted the tile state.
#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "amx_tile.hpp"
#include "cpu_features.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::amx {
namespace {

// The tile layer on the real instructions. GCC's intrinsics take the tile number
// as a literal token (they paste it into the instruction text), hence a branch per
// tile: `if constexpr` leaves exactly one instruction.
struct HwTiles {
  // The asm behind _tile_loadconfig / _tile_storeconfig declares an 8-byte memory
  // operand, not 64: compiler barriers keep the other 56 bytes from being treated
  // as unread (stores dropped) or unwritten (stale values reused).
  static void load_config(const TileConfig& c) {
    __asm__ volatile("" ::: "memory");
    _tile_loadconfig(&c);
  }
  static void store_config(TileConfig& c) {
    _tile_storeconfig(&c);
    __asm__ volatile("" ::: "memory");
  }
  template <int T>
  static void zero() {
    static_assert(T >= 0 && T < kTiles, "palette 1 has tmm0..tmm7");
    if constexpr (T == 0) _tile_zero(0);
    else if constexpr (T == 1) _tile_zero(1);
    else if constexpr (T == 2) _tile_zero(2);
    else if constexpr (T == 3) _tile_zero(3);
    else if constexpr (T == 4) _tile_zero(4);
    else if constexpr (T == 5) _tile_zero(5);
    else if constexpr (T == 6) _tile_zero(6);
    else _tile_zero(7);
  }
  // _tile_loadd's asm does not declare that it reads memory: the barrier makes
  // earlier stores (the widened weight panel) happen before the load.
  template <int T>
  static void load(const void* p, int64_t stride) {
    static_assert(T >= 0 && T < kTiles, "palette 1 has tmm0..tmm7");
    __asm__ volatile("" ::: "memory");
    if constexpr (T == 0) _tile_loadd(0, p, stride);
    else if constexpr (T == 1) _tile_loadd(1, p, stride);
    else if constexpr (T == 2) _tile_loadd(2, p, stride);
    else if constexpr (T == 3) _tile_loadd(3, p, stride);
    else if constexpr (T == 4) _tile_loadd(4, p, stride);
    else if constexpr (T == 5) _tile_loadd(5, p, stride);
    else if constexpr (T == 6) _tile_loadd(6, p, stride);
    else _tile_loadd(7, p, stride);
  }
  template <int T>
  static void store(void* p, int64_t stride) {
    static_assert(T >= 0 && T < kTiles, "palette 1 has tmm0..tmm7");
    if constexpr (T == 0) _tile_stored(0, p, stride);
    else if constexpr (T == 1) _tile_stored(1, p, stride);
    else if constexpr (T == 2) _tile_stored(2, p, stride);
    else if constexpr (T == 3) _tile_stored(3, p, stride);
    else if constexpr (T == 4) _tile_stored(4, p, stride);
    else if constexpr (T == 5) _tile_stored(5, p, stride);
    else if constexpr (T == 6) _tile_stored(6, p, stride);
    else _tile_stored(7, p, stride);
  }
  // The four products of the kernel's 2 A x 2 B blocking (tile roles in tile_gemm.inl).
  template <int C, int A, int B>
  static void dot() {
    if constexpr (C == 4 && A == 0 && B == 2) _tile_dpbssd(4, 0, 2);
    else if constexpr (C == 5 && A == 0 && B == 3) _tile_dpbssd(5, 0, 3);
    else if constexpr (C == 6 && A == 1 && B == 2) _tile_dpbssd(6, 1, 2);
    else if constexpr (C == 7 && A == 1 && B == 3) _tile_dpbssd(7, 1, 3);
    else static_assert(C < 0, "add this tile combination to HwTiles::dot");
  }
  static __m512i bf16x32(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }
  template <int C, int A, int B>
  static void dot_bf16() {
    if constexpr (C == 4 && A == 0 && B == 2) _tile_dpbf16ps(4, 0, 2);
    else if constexpr (C == 5 && A == 0 && B == 3) _tile_dpbf16ps(5, 0, 3);
    else if constexpr (C == 6 && A == 1 && B == 2) _tile_dpbf16ps(6, 1, 2);
    else if constexpr (C == 7 && A == 1 && B == 3) _tile_dpbf16ps(7, 1, 3);
    else static_assert(C < 0, "add this tile combination to HwTiles::dot_bf16");
  }
};

#include "tile_gemm.inl"
#include "tile_gemm_bf16.inl"
#include "tile_gemm_dense.inl"
#include "exp_ps512.inl"
#include "tile_attention.inl"

#include "fill.inl"

}  // namespace

// The bf16 tile GEMM where the CPU has it, unless int8_tiles_asked().
bool use_bf16_tiles() {
  // VCVTNE2PS2BF16 (the widening) is AVX512-BF16: every AMX-BF16 CPU so far has it.
  return cpu_features().amx_bf16 && __builtin_cpu_supports("avx512bf16") && !int8_tiles_asked();
}

void fill(KernelTable& t) { fill_tiles<HwTiles>(t, use_bf16_tiles()); }

GemmIntFn tile_gemm_int(Family f, bool bf16) { return int_tiles_for<HwTiles>(f, bf16); }

GemmFloatFn tile_gemm_bf16(Family f, bool bf16) { return bf16_tiles_for<HwTiles>(f, bf16); }

GemmDenseFn tile_gemm_dense(DenseType t) { return dense_tiles_for<HwTiles>(t); }

AttendBlockFn tile_attend_block(bool f16) { return attend_block_for<HwTiles>(f16); }

}  // namespace halfbyte::kernels::amx
