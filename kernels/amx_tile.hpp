// AMX tiles, the part shared by the real instructions and their C++ emulation.
// Internal. The tile GEMM (kernels/amx/tile_gemm.inl) is written once against a
// tile layer and instantiated twice: with the intrinsics (kernels/amx/gemm.cpp,
// Xeons with AMX) and with the functions below (kernels/amx/gemm_emulated.cpp),
// so the blocking, packing and tail logic that runs on AMX is the logic tested on
// every AVX-512 CPU.
//
// Palette 1 (the only one so far): 8 tiles tmm0..tmm7, each at most 16 rows of at
// most 64 bytes. The int8 dot product (TDPBSSD and its u8/s8 siblings)
//   C[m][n] += sum_{k < A.colsb/4} sum_{i<4} A[m][4k + i] * B[k][4n + i]
// (int32, wrapping) takes B in "VNNI" form: row k of B holds 4 consecutive k for
// each of 16 columns, the layout of a packed 64-byte chunk (ops/packed.hpp).
#pragma once

#include <cstdint>

namespace halfbyte::kernels::amx {

// The 64-byte operand of LDTILECFG / STTILECFG (Intel SDM, "LDTILECFG").
struct alignas(64) TileConfig {
  uint8_t palette_id;     // 0: release (INIT state), 1: palette 1
  uint8_t start_row;      // restart point of an interrupted load/store; 0 otherwise
  uint8_t reserved[14];   // must be zero
  uint16_t colsb[16];     // bytes per row of tmm0..7 (<= 64); 8..15 reserved, zero
  uint8_t rows[16];       // rows of tmm0..7 (<= 16); 8..15 reserved, zero
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

constexpr int kTiles = 8;        // palette 1: tmm0..tmm7
constexpr int kMaxRows = 16;
constexpr int kMaxColsb = 64;

// The emulation: each function does what the instruction of the same name does
// to the calling thread's tile state (configuration + 8 x 1 KB of tile data),
// following the SDM's pseudocode (rows and colsb from the configuration, bytes
// past colsb and rows past `rows` zeroed, int32 accumulation wrapping modulo
// 2^32). Where the hardware faults (#GP for a bad configuration, #UD for tiles
// used unconfigured or with shapes that do not match), the emulation throws
// halfbyte::Error naming the instruction and the condition, so a kernel bug that
// would kill the process on a Xeon fails a test here instead. It is at least as
// strict as the SDM: every operand tile must be configured (rows and colsb
// non-zero), and dot-product operands must be distinct tiles.
// Memory is read and written exactly where the instruction would (row r of a
// tile at base + r * stride, colsb bytes), so sanitizers check the kernel's
// addressing too.
namespace emu {

void ldtilecfg(const TileConfig* cfg);
void sttilecfg(TileConfig* cfg);
void tilerelease();
void tilezero(int tile);
void tileloadd(int tile, const void* base, int64_t stride);
void tilestored(int tile, void* base, int64_t stride);
// dst += a . b with a's / b's bytes signed (s) or unsigned (u): TDPB<a><b>D.
void tdpbssd(int dst, int a, int b);
void tdpbsud(int dst, int a, int b);
void tdpbusd(int dst, int a, int b);
void tdpbuud(int dst, int a, int b);
// dst (fp32) += a . b with a's / b's elements bf16 pairs: TDPBF16PS.
void tdpbf16ps(int dst, int a, int b);

}  // namespace emu
}  // namespace halfbyte::kernels::amx
