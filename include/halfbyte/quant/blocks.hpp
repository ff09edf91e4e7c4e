// Byte layouts of the GGUF block formats (identical to ggml's block_q4_0,
// block_q4_1 and block_q8_0). Scales are stored as raw fp16 bits.
#pragma once

#include <cstdint>

namespace halfbyte::quant {

inline constexpr int kQK = 32;  // elements per GGUF block

struct BlockQ4_0 {
  uint16_t d;           // fp16 scale
  uint8_t qs[kQK / 2];  // byte j: element j (low nibble), element j + 16 (high)
};
struct BlockQ4_1 {
  uint16_t d;           // fp16 scale
  uint16_t m;           // fp16 min (added)
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[kQK];
};

static_assert(sizeof(BlockQ4_0) == 18, "BlockQ4_0 must match GGUF (18 bytes)");
static_assert(sizeof(BlockQ4_1) == 20, "BlockQ4_1 must match GGUF (20 bytes)");
static_assert(sizeof(BlockQ8_0) == 34, "BlockQ8_0 must match GGUF (34 bytes)");

}  // namespace halfbyte::quant
