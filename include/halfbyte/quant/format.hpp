// Quantized block formats: what a block holds and how big it is.
//
//   q4_0      32 weights: fp16 d, 16 bytes of nibbles; w = d * (q - 8).     (GGUF Q4_0)
//   q4_1      32 weights: fp16 d, fp16 m, 16 bytes;   w = d * q + m.         (GGUF Q4_1)
//   q8_0      32 weights: fp16 d, 32 int8;           w = d * q.             (GGUF Q8_0)
//   int4_gG   G in {32, 64, 128} weights: scale s, G/2 bytes; w = s * (q - 8)
//   int4a_gG  same plus an additive min m:                    w = s * q + m
//             (suffix _bf16 for bf16 instead of fp16 scale and min)
//
// GGUF formats put element j in the low nibble and j + 16 in the high nibble of
// byte j. The grouped int4 formats use the order of ONNX Runtime's MatMulNBits and
// MLX: byte j holds elements 2j (low nibble) and 2j + 1 (high nibble).
// docs/FORMATS.md has the byte layouts.
#pragma once

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "halfbyte/core/error.hpp"

namespace halfbyte::quant {

enum class Kind : uint8_t { Q4_0, Q4_1, Q8_0, Int4 };
enum class ScaleType : uint8_t { F16, BF16 };

inline constexpr int kMaxBlock = 128;  // largest elements per block of any format

struct Format {
  Kind kind = Kind::Q4_0;
  int group = 32;                    // elements per block
  bool affine = false;               // Int4: w = s*q + m instead of s*(q - 8)
  ScaleType scale = ScaleType::F16;  // Int4: type of s and m

  static constexpr Format q4_0() { return {Kind::Q4_0, 32, false, ScaleType::F16}; }
  static constexpr Format q4_1() { return {Kind::Q4_1, 32, true, ScaleType::F16}; }
  static constexpr Format q8_0() { return {Kind::Q8_0, 32, false, ScaleType::F16}; }
  static Format int4(int group, bool affine = false, ScaleType scale = ScaleType::F16) {
    if (group != 32 && group != 64 && group != 128)
      throw_invalid("int4 group size ", group, " is not supported (32, 64 or 128)");
    return {Kind::Int4, group, affine, scale};
  }

  constexpr int block_size() const noexcept { return group; }
  constexpr bool is_4bit() const noexcept { return kind != Kind::Q8_0; }
  constexpr bool has_min() const noexcept { return kind == Kind::Q4_1 || (kind == Kind::Int4 && affine); }

  constexpr size_t block_bytes() const noexcept {
    switch (kind) {
      case Kind::Q4_0: return 18;
      case Kind::Q4_1: return 20;
      case Kind::Q8_0: return 34;
      case Kind::Int4: return size_t(affine ? 4 : 2) + size_t(group) / 2;
    }
    return 0;
  }
  constexpr double bits_per_weight() const noexcept { return 8.0 * double(block_bytes()) / group; }

  std::string name() const {
    switch (kind) {
      case Kind::Q4_0: return "q4_0";
      case Kind::Q4_1: return "q4_1";
      case Kind::Q8_0: return "q8_0";
      case Kind::Int4:
        return std::string(affine ? "int4a_g" : "int4_g") + std::to_string(group) +
               (scale == ScaleType::BF16 ? "_bf16" : "");
    }
    return "?";
  }

  // Parses the names above (case-insensitive). Throws Error(InvalidArgument).
  static Format parse(std::string_view text) {
    std::string s(text);
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (s == "q4_0") return q4_0();
    if (s == "q4_1") return q4_1();
    if (s == "q8_0") return q8_0();
    std::string_view v(s);
    bool affine = false;
    if (v.rfind("int4a_g", 0) == 0) {
      affine = true;
      v.remove_prefix(7);
    } else if (v.rfind("int4_g", 0) == 0) {
      v.remove_prefix(6);
    } else {
      bad_name(text);
    }
    ScaleType st = ScaleType::F16;
    if (v.size() > 5 && v.substr(v.size() - 5) == "_bf16") {
      st = ScaleType::BF16;
      v.remove_suffix(5);
    } else if (v.size() > 5 && v.substr(v.size() - 5) == "_fp16") {
      v.remove_suffix(5);
    }
    if (v == "32") return int4(32, affine, st);
    if (v == "64") return int4(64, affine, st);
    if (v == "128") return int4(128, affine, st);
    bad_name(text);
  }

  friend constexpr bool operator==(const Format& a, const Format& b) noexcept {
    return a.kind == b.kind && a.group == b.group && a.affine == b.affine && a.scale == b.scale;
  }
  friend constexpr bool operator!=(const Format& a, const Format& b) noexcept { return !(a == b); }

 private:
  [[noreturn]] static void bad_name(std::string_view text) {
    throw_invalid("unknown quantization format '", text,
                  "' (expected q4_0, q4_1, q8_0, int4_g32|g64|g128 or int4a_g32|g64|g128, "
                  "optionally with suffix _bf16)");
  }
};

// Bytes of one row of n elements. Throws if n is not a whole number of blocks.
inline size_t row_bytes(const Format& f, int64_t n) {
  if (n <= 0 || n % f.block_size() != 0)
    throw_invalid("row length ", n, " is not a positive multiple of the ", f.name(),
                  " block size ", f.block_size());
  return size_t(n / f.block_size()) * f.block_bytes();
}

}  // namespace halfbyte::quant
