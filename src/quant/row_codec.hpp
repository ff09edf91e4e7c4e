// One row of a GGUF tensor in the types `halfbyte quantize` writes: encode (with the
// error-minimising quantizers of quant/quantize.hpp and quant/ggml_quants.hpp),
// decode, and, for GPTQ (quant/gptq.hpp), the grid of values each element of an
// encoded block can take and a way to set its code.
#pragma once

#include <cstdint>

#include "halfbyte/io/gguf.hpp"

namespace halfbyte::quant {

// Encodes n floats (n a whole number of blocks of t) into dst. w: per-column
// importance, or null. Throws for a type with no encoder or a value the format
// cannot store.
void encode_row(io::GgmlType t, const float* x, int64_t n, const float* w, uint8_t* dst);
void decode_row(io::GgmlType t, const uint8_t* src, int64_t n, float* y);

// Element j of an encoded block decodes to a * (q - zero) + b for its integer code
// q in [lo, hi]; a, b, zero come from the block's (or sub-block's) stored scale and
// offset, exactly as the decoder computes the value.
struct ElementGrid {
  float a = 0.0f, b = 0.0f;
  int zero = 0, lo = 0, hi = 0;
  float value(int q) const noexcept { return a * float(q - zero) + b; }
  int nearest(float v) const noexcept;  // the code whose value is nearest v
};
// The quantized types with a grid: q4_0, q4_1, q8_0, q5_0, q5_1, q4_K, q5_K, q6_K.
bool has_element_grid(io::GgmlType t) noexcept;
// j in [0, block size of t). Throws for a type without a grid.
ElementGrid element_grid(io::GgmlType t, const uint8_t* block, int j);
// Stores code q (within the element's grid) for element j, leaving the rest as is.
void set_code(io::GgmlType t, uint8_t* block, int j, int q);

}  // namespace halfbyte::quant
