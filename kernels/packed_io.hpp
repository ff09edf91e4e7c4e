// Reading the packed layout (see include/halfbyte/ops/packed.hpp) one weight at a
// time: for the scalar kernels, pack/unpack and tests. Not for hot loops of SIMD code.
#pragma once

#include <cstdint>
#include <cstring>

#include "halfbyte/core/half.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels {

inline float load_scale(const uint8_t* p, int r, bool bf16) {
  uint16_t b;
  std::memcpy(&b, p + 2 * r, 2);
  return bf16 ? bf16_to_fp32(b) : fp16_to_fp32(b);
}

// Byte offset, within a 4-bit sub-block, of the byte holding weight k (0..31) of
// row r, and whether it is the high nibble.
inline size_t nib_offset(int r, int k) { return size_t((k & 15) >> 2) * 64 + size_t(r) * 4 + size_t(k & 3); }
inline bool nib_high(int k) { return k >= 16; }

// Code of weight k (0..31) of row r in a sub-block: 0..15 for 4-bit, -128..127 for q8.
inline int code_at(const uint8_t* sub, bool is4bit, int r, int k) {
  if (is4bit) {
    const uint8_t b = sub[nib_offset(r, k)];
    return nib_high(k) ? b >> 4 : b & 15;
  }
  return int(int8_t(sub[size_t(k >> 2) * 64 + size_t(r) * 4 + size_t(k & 3)]));
}

}  // namespace halfbyte::kernels
