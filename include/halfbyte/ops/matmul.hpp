// y = x . W^T for quantized or float weights.
//
//   x: float32 [M, K] (rows may be strided; elements within a row contiguous)
//   W: PackedMatrix [N, K] (quantized), or float32 / fp16 [N, K]
//   y: float32 [M, N] (rows may be strided)
//
// M = 1 is decoding (GEMV, bandwidth-bound); M > 1 is prompt processing (GEMM).
#pragma once

#include <cstdint>
#include <functional>

#include "halfbyte/core/half.hpp"
#include "halfbyte/core/tensor.hpp"
#include "halfbyte/ops/packed.hpp"

namespace halfbyte::ops {

enum class Precision : uint8_t {
  Auto,     // Int for every quantized format
  Int,      // activations quantized per 32-block to int8 (q8_0 rules), integer dot
            // products, one float multiply-add per block
  Float,    // weights dequantized to fp32 in registers, fp32 FMA: matches the
            // dequantized weights' product to ~1e-6 relative
  NoInt8,   // no int8 activations: the bf16 tile GEMM where the CPU has AMX-BF16 and
            // M is large enough (bf16 activations, rounded per element: outlier
            // channels keep their precision); else int16 activations per 32-block
            // (each moves by at most amax/65534) where the ISA has that kernel
            // (avx2, avx512, amx); else Float. For layers whose inputs have outlier
            // channels that int8 per 32-block loses. Float weights: the bf16 tiles
            // under the same condition, else fp32 (the float overloads below).
  Int8Asym, // where the ISA has the asymmetric int8 kernel (avx512; q4_0 and q8_0
            // weights) and no bf16 tiles take the call: activations quantized per
            // 32-block to 256 levels from an offset to the block's max (the row's min
            // where that coarsens no block's step by more than 1/8, else the block's
            // min; each value moves by at most half a step), integer dot products,
            // plus the offset times the weights' sum; else Int. With act_scale
            // (smoothing), the way to run outlier-channel layers at int8 speed.
};

// What ops::matmul applies to each output after the product (MatmulOptions).
enum class Activation {
  None,
  Gelu,  // gelu(v) = v / 2 (1 + erf(v / sqrt 2)), the encoders' (erf, not tanh)
};

struct MatmulOptions {
  Precision precision = Precision::Auto;
  int n_threads = 0;  // 0: the global setting (set_num_threads)
  // Rows from which the bf16 tile GEMM (AMX) takes over: 0 is the measured crossover
  // (32); 1 puts every M on tiles where the CPU has them, so that a row's result
  // does not depend on how many rows share the call (batch invariance).
  int64_t tile_min_rows = 0;
  // [K] or null: x's columns are multiplied by act_scale before the product (the
  // caller has divided W's columns by it: SmoothQuant's per-channel smoothing, which
  // moves outliers from the activations into the weights). Quantized weights only
  // (the float-weight overloads reject it); every path honours it:
  // the asymmetric int8 one at no cost (in its quantization), the others through a
  // scaled copy of x.
  const float* act_scale = nullptr;
  // y = activation(x W^T + bias), bias [N] or null. The asymmetric int8 kernel
  // (avx512) applies both as it stores its tiles; the other paths in a pass over y.
  const float* bias = nullptr;
  Activation activation = Activation::None;
  // Produces x's rows just before the product reads them: prologue(m0, m1) writes
  // rows [m0, m1) of x (a LayerNorm of a residual stream, say), once for each row.
  // The int8/int16 paths call it on each thread for the rows that thread then quantizes
  // (while they are in its cache, with no fork/join of its own); the others for all
  // rows first. x must be the memory the prologue writes; the prologue must not throw.
  std::function<void(int64_t m0, int64_t m1)> prologue;
};

void matmul(TensorView<const float> x, const PackedMatrix& w, TensorView<float> y,
            const MatmulOptions& opts = {});

// Float weights (layers kept in float; also a reference): fp32 products (avx2 and
// avx512: their fp32 kernel; elsewhere Eigen), within (K + 2) 2^-24 sum_k |w_k x_k|,
// except on bf16 tiles (AMX-BF16, M >= tile_min_rows) where the precision allows:
// f32 weights only under Precision::NoInt8, f16 and bf16 weights under anything but
// Precision::Float. On the tiles weights and activations are rounded to bf16 and
// summed in fp32: |y - y*| <= (2^-7 + 2^-16 + K 2^-23) sum_k |w_k x_k| against the
// exact product of the weights as given. MatmulOptions::act_scale is for quantized
// weights: these overloads reject it.
void matmul(TensorView<const float> x, TensorView<const float> w, TensorView<float> y,
            const MatmulOptions& opts = {});
void matmul(TensorView<const float> x, TensorView<const f16> w, TensorView<float> y,
            const MatmulOptions& opts = {});
void matmul(TensorView<const float> x, TensorView<const bf16> w, TensorView<float> y,
            const MatmulOptions& opts = {});

}  // namespace halfbyte::ops
