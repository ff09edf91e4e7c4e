// Dequantization of ggml block types that halfbyte's kernels do not take natively
// (q5_0, q5_1 and the 256-element "k-quants" q2_K .. q8_K), written from the
// GGUF/ggml block layouts. Used by the loader: token embeddings are dequantized
// per row, matrix weights are dequantized and re-quantized to a native format.
#pragma once

#include <cstdint>

#include "halfbyte/io/gguf.hpp"

namespace halfbyte::io {

// Dequantizes n values (n a multiple of the type's block size) from src to out.
// Returns false, writing nothing, if t is not one of the types handled here
// (Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K) or n is not a whole number of
// blocks.
bool ggml_dequantize_row(GgmlType t, const uint8_t* src, int64_t n, float* out);

// True for the types ggml_dequantize_row handles.
bool ggml_dequantize_supported(GgmlType t);

}  // namespace halfbyte::io
