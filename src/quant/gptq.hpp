// GPTQ (Frantar et al., 2022, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers") on ggml's block formats.
//
// A weight row w (n inputs) is quantized to minimise the error of the layer's
// output on calibration activations x, E[((w - q) . x)^2] = (w - q) H (w - q)^T
// with H = E[x x^T], instead of the per-column weighted error sum_j H_jj (w_j - q_j)^2
// that the importance matrix alone gives. Columns are quantized in order; the error
// each one leaves is pushed onto the columns not yet quantized through the inverse
// Hessian (the optimal update of the rest for that column fixed), so later columns
// compensate earlier ones.
//
// Block formats fix a scale (and offset) per block of 32 or 256 columns: when the
// column loop reaches a block, the block is encoded by the usual error-minimising
// quantizer (row_codec.hpp, importance-weighted) from the weights as they stand
// after the earlier columns' updates, which fixes its scales; then each column's code
// is the nearest point of that grid to its updated value.
#pragma once

#include <cstdint>
#include <vector>

#include "halfbyte/io/gguf.hpp"

namespace halfbyte::quant {

// The factor GPTQ runs on: U upper triangular with U^T U = (H + damp I)^-1.
struct GptqFactor {
  int64_t n = 0;
  std::vector<float> u;  // n x n, row-major; only j <= k is used
};

// From the sum of x x^T over calibration tokens (n x n, symmetric, row-major; any
// positive scale). damp: the fraction of the mean diagonal added to the diagonal
// (GPTQ's percdamp; 0.01 there), raised tenfold (up to 3 times) if H is not
// positive definite in floating point. Throws Error(InvalidArgument) for a
// matrix with a negative or non-finite diagonal or an all-zero one (no statistics).
GptqFactor gptq_factor(const float* cov, int64_t n, double damp = 0.01);

// Quantizes `rows` rows of n weights (row-major, overwritten: on return they hold
// the updated weights, not the input) into `out` (row_bytes apart) as type t
// (has_element_grid(t), n a whole number of its blocks). importance: per column, as
// for encode_row, or null. Single-threaded: callers split rows.
void gptq_rows(io::GgmlType t, const GptqFactor& f, float* w, int64_t rows, const float* importance,
               uint8_t* out, size_t row_bytes);

}  // namespace halfbyte::quant
