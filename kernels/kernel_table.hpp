// The kernel table: function pointers per operation, filled once per ISA by
// dispatch.cpp. Internal to the library (not installed).
//
// Contract shared by every ISA (kernels/scalar is the reference):
//  * Integer path. Activations are quantized per 32-block like q8_0: d = amax/127,
//    q = round(x/d), s = sum(q), ds = d*s (quantize_act). For output (m, n) the
//    kernel walks the blocks of K in order and does, per block,
//      isum = sum_k code[k] * q[k]          (4-bit codes unsigned 0..15, q8 signed)
//      sym 4-bit: isum -= 8 * s
//      acc = fma(float(isum), dw * d, acc)   (dw: the row's scale for this block)
//      affine:    acc = fma(mw, ds, acc)
//    so every ISA computes the same value, bit for bit. A block of x with a NaN
//    or an infinity is quantized to codes 0 with d, ds (and c) NaN: every output
//    of its row is NaN.
//  * Float path. Per block: t = sum_k fma(value(code[k]), x[k]) in k order
//    (value: code - 8, code, or the int8), acc = fma(t, dw, acc), affine:
//    acc = fma(mw, xsum, acc) with xsum the block's fp32 sum of x in k order.
//  * Int16 path (ops::Precision::NoInt8 without tiles, where an ISA provides it):
//    the integer path with activations quantized per 32-block to int16 (d =
//    amax/32767, quantize_act16): the same per-block arithmetic, bit for bit the
//    scalar kernels (scalar::gemm_i16). Each activation moves by at most
//    amax/65534, so outlier channels keep their precision where int8 loses it.
//    The int16 codes of a block are stored in each group of 4 as k0, k2, k1, k3
//    (act16_index), which lets the vector kernels widen 4 packed int8/4-bit
//    weights of a 32-bit lane into two int16 pairs with shifts only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "halfbyte/ops/packed.hpp"
#include "halfbyte/quant/format.hpp"

namespace halfbyte::kernels {

// Per activation block (32 values) of the integer path.
struct ActBlock {
  float d;    // scale
  int32_t s;  // sum of the int8 codes (asymmetric: 1 if the row shares one offset, else 0)
  float ds;   // d * s (asymmetric: 0)
  float c = 0.0f;  // asymmetric activations (quantize_act_asym): x = d * q + c; else 0
};

// Quantized activations: rows m of K int8 codes and K/32 blocks.
struct ActQ8 {
  const int8_t* qs;       // [M][K]
  const ActBlock* meta;   // [M][K/32]
  int64_t K;
};

// Int16-quantized activations: rows m of K int16 codes (4-groups in the order
// k0, k2, k1, k3) and K/32 blocks (d = amax/32767).
struct ActQ16 {
  const int16_t* qs;      // [M][K]
  const ActBlock* meta;   // [M][K/32]
  int64_t K;
};
// Position of activation k within its row of ActQ16::qs.
constexpr int64_t act16_index(int64_t k) { return (k & ~int64_t(3)) | ((k & 1) << 1) | ((k >> 1) & 1); }

// Float activations with per-block sums (affine formats need them).
struct ActF32 {
  const float* x;      // row m at x + m * ldx
  int64_t ldx;
  const float* xsum;   // [M][K/32]
};

enum Family : int { kSym4 = 0, kAffine4 = 1, kQ8 = 2, kFamilies = 3 };

// Geometry of a PackedMatrix as plain values.
struct Packed {
  const uint8_t* data;
  int64_t rows, cols;
  int64_t scale_groups;   // per row group
  int bps;                // 32-weight sub-blocks per scale group
  size_t header_bytes, sub_block_bytes, scale_group_bytes, row_group_bytes;
  Family family;
  bool bf16;              // scales (and mins) are bf16, else fp16

  static Packed of(const ops::PackedMatrix& p);
  const uint8_t* group(int64_t g) const { return data + size_t(g) * row_group_bytes; }
};

// A block of work: row groups [g0, g1) of W against rows [m0, m1) of x, writing
// y[m * ldy + n] for the valid n (< rows) of those groups. bias ([rows] or null) and
// gelu: y = gelu(y + bias), honoured only by kernels whose table says so
// (KernelTable::asym_epilogue); ops::matmul sets them only for those.
struct GemmTask {
  int64_t g0, g1, m0, m1;
  float* y;
  int64_t ldy;
  const float* bias = nullptr;
  bool gelu = false;
};

// Float weights [rows, cols] (row n at data + n * ld elements), of the element type
// the function is for (DenseType); GemmTask's groups are 16 rows each.
enum DenseType : int { kDenseF32 = 0, kDenseF16 = 1, kDenseBF16 = 2, kDenseTypes = 3 };
struct Dense {
  const void* data;
  int64_t ld;
  int64_t rows, cols;
};
using GemmDenseFn = void (*)(const Dense& w, const ActF32& x, const GemmTask& t);

using QuantizeActFn = void (*)(const float* x, int64_t K, int8_t* qs, ActBlock* meta);
using GemmIntFn = void (*)(const Packed& w, const ActQ8& x, const GemmTask& t);
using GemmFloatFn = void (*)(const Packed& w, const ActF32& x, const GemmTask& t);
using QuantizeAct16Fn = void (*)(const float* x, int64_t K, int16_t* qs, ActBlock* meta);
using GemmI16Fn = void (*)(const Packed& w, const ActQ16& x, const GemmTask& t);
// Asymmetric 8-bit activations of v[k] = x[k] * inv_scale[k] (x where inv_scale is
// null; per-channel smoothing: the caller has multiplied W's columns by 1 / inv_scale):
// per 32-block 256 levels from an offset c to the block's max, v = d * q + c with q
// an unsigned byte in [0, 255] (stored in qs as the same bits), d = (max - c) / 255.
// c is the row's min (the row's blocks share it: s = 1) where that widens no block's
// step by more than kAsymRowSpan (GELU outputs, bounded below, mostly), else each
// block's own min (s = 0: rows with outlier channels keep their precision). ds: 0.
// A block of equal values is exact (d = 0). The GEMM adds c times the weights' sum:
// for a row with s = 1 once after the last block, else block by block (kernels:
// unsigned activations against signed weights, no code offset to remove).
constexpr float kAsymRowSpan = 1.125f;
using QuantizeActAsymFn = void (*)(const float* x, int64_t K, const float* inv_scale, int8_t* qs, ActBlock* meta);
using DequantizeRowFn = void (*)(const quant::Format& f, const void* src, int64_t n, float* y);

// Attention of M query rows that share one KV head and see the same n_keys keys
// (the heads of one token under grouped-query attention):
//   out[m] = softmax_j(scale * q[m] . k_j) . V,  j < n_keys.
// The K cache is stored transposed in tiles of kKeyTile keys: key j, dim d at
// kt[(j / kKeyTile) * hd * kKeyTile + d * kKeyTile + j % kKeyTile], so scores are a
// GEMM with keys along the vector lanes and a cache fills page by page as keys
// arrive. The last tile's padding past n_keys is readable (its values are ignored).
// V is [n_keys] rows of hd at a stride of ldv >= hd. Elements are fp32 or fp16 bits (attend[0] / attend[1]).
// scratch holds M rows of lds floats, lds >= n_keys rounded up to kKeyTile.
// Not bit-exact across ISAs (vector exp, summation order): within the bound that
// tests/kernels/test_attention.cpp states against the scalar reference.
constexpr int kKeyTile = 32;
struct AttnArgs {
  const float* q;
  int64_t ldq;
  int M;
  const void* kt;
  const void* v;
  int64_t ldv;
  int64_t n_keys;
  int hd;
  float scale;
  float* scratch;
  int64_t lds;
  float* out;
  int64_t ldo;
  // Where not null: stats[2 m] = row m's largest scaled score, stats[2 m + 1] = the
  // sum of exp(score - that max) over its keys (so attention over several ranges of
  // keys can be combined: decoding splits a long cache across threads).
  float* stats = nullptr;
};
using AttendFn = void (*)(const AttnArgs& a);
// Causal attention of a run of T consecutive tokens of one sequence (prompt
// processing), for the `group` query heads that share one KV head: token i (0 <= i < T)
// sees keys j < n0 + i (itself included: n0 is the first token's position + 1),
//   out[i, h] = softmax_j(scale * q[i, h] . k_j) . V.
// Query row (i, h) at q + i ldq + h hd, output row at out + i ldo + h hd. K and V as
// AttnArgs (K tiled; V rows at a stride of ldv). Elements fp32 or fp16 bits
// (attend_block[0] / [1]). Vector ISAs (attention_driver.inl): fp32, the per-token
// kernels' arithmetic and bound, blocks of 16 tokens per pass over the keys. Rounded
// to bf16 (attend_block_bf16): amx's tiles, avx512's vdpbf16ps. Where null (scalar),
// the caller runs attend per token.
struct AttnBlockArgs {
  const float* q;
  int64_t ldq;
  int T, group;
  const void* kt;
  const void* v;
  int64_t ldv;
  int64_t n0;
  int hd;
  float scale;
  float* out;
  int64_t ldo;
};
using AttendBlockFn = void (*)(const AttnBlockArgs& a);
// n fp32 keys of hd values (key j at k + j ldk) into the tiled layout above, padded
// with zeros to a whole number of tiles: tiles[(j / kKeyTile) hd kKeyTile + d kKeyTile
// + j % kKeyTile] = k[j ldk + d] for j < n, 0 for n <= j < n rounded up to kKeyTile.
using PackKeysFn = void (*)(const float* k, int64_t ldk, int64_t n, int hd, float* tiles);
// out[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i]  (SwiGLU).
using SiluMulFn = void (*)(const float* g, const float* u, float* out, int64_t n);
// Encoder elementwise operations (kernels/<isa>/elementwise.cpp):
// x[i] = gelu(x[i] + bias[i]) = v/2 (1 + erf(v/sqrt 2)), erf a rational approximation
// within a few ulp (bias may be null);
using GeluFn = void (*)(float* x, const float* bias, int64_t n);
// x = LayerNorm(x + a + bias) * w + b over one row of n (a and bias may be null).
using AddLayerNormFn = void (*)(float* x, const float* a, const float* bias, int64_t n, const float* w,
                                const float* b, float eps);

struct KernelTable {
  const char* isa = "scalar";
  QuantizeActFn quantize_act = nullptr;
  GemmIntFn gemm_int[kFamilies][2] = {};      // [family][bf16 scales]
  GemmFloatFn gemm_float[kFamilies][2] = {};
  // The int16 path: set only by ISAs with a fast kernel for it (avx2: vpmaddwd,
  // avx512: vpdpwssd);
  // where null, NoInt8 takes the float path. The scalar reference is
  // scalar::gemm_i16, outside the table so that no ISA inherits it.
  QuantizeAct16Fn quantize_act16 = nullptr;
  GemmI16Fn gemm_i16[kFamilies][2] = {};
  // The asymmetric int8 path (activations from quantize_act_asym): the integer path
  // plus c times the dequantized weights' sum, per block after the block's integer
  // term (rows with s = 0) or once after the last block (s = 1); bit for bit the
  // scalar reference scalar::gemm_int_asym.
  // Set only by ISAs where int8 beats int16 (avx512: vpdpbusd does 4 products per
  // lane, vpdpwssd 2); kSym4 and kQ8 only.
  QuantizeActAsymFn quantize_act_asym = nullptr;
  GemmIntFn gemm_int_asym[kFamilies][2] = {};
  bool asym_epilogue = false;  // gemm_int_asym applies GemmTask::bias and ::gelu as it stores
  DequantizeRowFn dequantize_row = nullptr;
  AttendFn attend[2] = {};  // [0]: fp32 cache, [1]: fp16 cache
  PackKeysFn pack_keys = nullptr;
  SiluMulFn silu_mul = nullptr;
  GeluFn gelu = nullptr;
  AddLayerNormFn add_layer_norm = nullptr;
  // amx: the GEMM on bf16 tiles (kernels/amx/tile_gemm_bf16.inl): fp32 activations
  // rounded to bf16, weights widened to bf16 with their scales, fp32 sums. Not the
  // integer contract: within the bound tile_gemm_bf16.inl states. ops::matmul uses
  // it in place of the integer path for M >= tile_min_rows when it is set.
  GemmFloatFn gemm_tile[kFamilies][2] = {};
  // amx: float weights (f32, f16, bf16) on the same bf16 tiles (kernels/amx/
  // tile_gemm_dense.inl): weights and activations rounded to bf16, fp32 sums, any K.
  // ops::matmul's float-weight overloads use it for M >= tile_min_rows where the
  // precision allows (include/halfbyte/ops/matmul.hpp).
  GemmDenseFn gemm_tile_dense[kDenseTypes] = {};
  // Float weights with fp32 FMAs (avx2, avx512): ops::matmul's float overloads use it in
  // place of Eigen (compiled for baseline x86-64) where set; any summation order,
  // within (K + 2) 2^-24 sum_k |w_k x_k| of the exact product.
  GemmDenseFn gemm_dense[kDenseTypes] = {};
  // Prompt attention (AttnBlockArgs). Vector ISAs: fp32 (attention_driver.inl), within
  // tests/kernels/test_attention.cpp's bound.
  AttendBlockFn attend_block[2] = {};
  // The same with q, K, V and the softmax weights rounded to bf16, fp32 sums; head dims
  // a multiple of 32; within the bound tests/kernels/test_amx_attention.cpp states
  // against fp32: amx's tiles (AMX-BF16, kernels/amx/tile_attention.inl), else avx512's
  // vdpbf16ps where the CPU has AVX512_BF16 (kernels/avx512/attention_bf16.cpp). Not
  // for fp32 precision (KvCache::attend_block). Null elsewhere.
  AttendBlockFn attend_block_bf16[2] = {};
  int64_t tile_min_rows = 0;
};

Family family_of(const quant::Format& f);

// The table in use (chosen on first call: HALFBYTE_ISA or the best available).
const KernelTable& active();

// For the SIMD tiles' last rows: tile(std::integral_constant<int, rest>{}, g, m)
// for rest in 1..R (a tile of exactly the rows left, fewer than the full MR).
template <int R, class Tile>
inline void tail_rows(int64_t rest, Tile& tile, int64_t g, int64_t m) {
  if constexpr (R >= 1) {
    if (rest == R) tile(std::integral_constant<int, R>{}, g, m);
    else tail_rows<R - 1>(rest, tile, g, m);
  }
}

// Each ISA folder provides fill(); an ISA may leave entries null to inherit the
// ones of the ISA below it (filled first).
// fill() of each ISA calls its fill_attention() (attention.cpp of the folder).
namespace scalar {
void fill(KernelTable& t);
void fill_attention(KernelTable& t);
void fill_elementwise(KernelTable& t);
// The int16 path's reference (kernel_table.hpp's contract), for every family.
void quantize_act16(const float* x, int64_t K, int16_t* qs, ActBlock* meta);
GemmI16Fn gemm_i16(Family f);
// The asymmetric int8 path's reference (kSym4 and kQ8; nullptr for kAffine4).
void quantize_act_asym(const float* x, int64_t K, const float* inv_scale, int8_t* qs, ActBlock* meta);
GemmIntFn gemm_int_asym(Family f);
}  // namespace scalar
namespace avx2 { void fill(KernelTable& t); void fill_attention(KernelTable& t); void fill_i16(KernelTable& t); void fill_elementwise(KernelTable& t); void fill_dense(KernelTable& t); }
namespace avx512 { void fill(KernelTable& t); void fill_attention(KernelTable& t); void fill_i16(KernelTable& t); void fill_elementwise(KernelTable& t); void fill_dense(KernelTable& t); }
// avx512's prompt attention on vdpbf16ps ([0] fp32 cache, [1] fp16): built where the
// compiler has -mavx512bf16 (HALFBYTE_HAVE_AVX512BF16_KERNELS); for CPUs with AVX512_BF16.
namespace avx512 { AttendBlockFn bf16_attend_block(bool f16); }
namespace neon { void fill(KernelTable& t); void fill_attention(KernelTable& t); }
namespace neon_i8mm { void fill(KernelTable& t); }

// amx (x86-64 builds): avx512's table with GEMMs of at least kMinTileRows rows on
// AMX tiles (GEMV and short GEMMs stay on avx512): the bf16 tile GEMM where the CPU
// has AMX-BF16 (the faster design, docs/AMX.md), else, or with HALFBYTE_AMX_GEMM=int8,
// the integer one.
namespace amx {
// Where AMX takes over from avx512: at M = 16 the integer tiles beat avx512 by
// 1.1-1.4x on a Sapphire Rapids Xeon (bench_matmul; docs/AMX.md); below 16 a tile
// holds padding rows (smaller M not measured).
constexpr int64_t kMinTileRows = 16;
// Where the bf16 tile GEMM takes over from the integer one: it widens every weight
// once per call, which pays from M ~ 32 on (measured on a Sapphire Rapids Xeon,
// 2 threads, K = N = 4096, GOP/s, int8 tiles vs bf16: q4_0 M16 645 vs 687, M32 834 vs
// 1140; q8_0 M16 848 vs 671, M32 1013 vs 1070; docs/AMX.md).
constexpr int64_t kMinBf16Rows = 32;
void fill(KernelTable& t);
// The same table on the C++ emulation of the tiles: the "amx_emulated" ISA, offered
// on AVX-512 CPUs with HALFBYTE_AMX_EMULATION=1 only and never chosen by default
// (tests: the model paths through the tile kernels on CPUs without AMX; far slower
// than avx512).
void fill_emulated(KernelTable& t);
// The tile GEMM itself, for any number of rows (no crossover), for tests: on the
// tile instructions (AMX CPUs only), and on their C++ emulation (any AVX-512 CPU:
// the same blocking, packing and tail code).
GemmIntFn tile_gemm_int(Family f, bool bf16);
GemmIntFn emulated_tile_gemm_int(Family f, bool bf16);
// The bf16 tile GEMM (any number of rows), on the hardware and on the emulation.
GemmFloatFn tile_gemm_bf16(Family f, bool bf16);
GemmFloatFn emulated_tile_gemm_bf16(Family f, bool bf16);
// Float weights on bf16 tiles (any number of rows), on the hardware and on the emulation.
GemmDenseFn tile_gemm_dense(DenseType t);
GemmDenseFn emulated_tile_gemm_dense(DenseType t);
// Prompt attention on bf16 tiles ([0]: fp32 cache, [1]: fp16), hardware and emulation.
AttendBlockFn tile_attend_block(bool f16);
AttendBlockFn emulated_tile_attend_block(bool f16);
}  // namespace amx

}  // namespace halfbyte::kernels
