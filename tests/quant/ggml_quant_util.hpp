// Helpers of the ggml quantizer tests (test_ggml_quants*.cpp).
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <utility>
#include <vector>

#include "halfbyte/core/half.hpp"
#include "halfbyte/quant/ggml_quants.hpp"
#include "halfbyte/io/gguf.hpp"
#include "io/ggml_dequant.hpp"
#include "test_util.hpp"

namespace halfbyte::test {

inline float f16r(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }

// Quantizes x with `qb` (blocks of `block` values, `bytes` bytes each) and decodes
// the bytes with the loader's decoder (src/io/ggml_dequant.cpp); returns the values.
template <class Q>
std::vector<float> round_trip(io::GgmlType t, int block, int bytes, const std::vector<float>& x, Q qb,
                              const float* w = nullptr) {
  const size_t nb = x.size() / size_t(block);
  std::vector<uint8_t> buf(nb * size_t(bytes));
  for (size_t i = 0; i < nb; ++i)
    qb(x.data() + i * size_t(block), w ? w + i * size_t(block) : nullptr, buf.data() + i * size_t(bytes));
  std::vector<float> y(x.size());
  REQUIRE(io::ggml_dequantize_row(t, buf.data(), int64_t(x.size()), y.data()));
  return y;
}

// q4_K's block quantizer as round_trip's `qb` (the tests compare other formats with it).
inline constexpr auto kQ4K = [](const float* x, const float* w, uint8_t* d) {
  quant::ggml::quantize_block_q4_k(x, w, d);
};

// The value distributions every quantizer is tried on.
inline std::vector<std::pair<const char*, std::vector<float>>> datasets(size_t n) {
  return {{"gaussian", gaussian(n, 1)},
          {"uniform", uniform(n, 2, -1.0f, 3.0f)},
          {"heavy-tailed", heavy_tailed(n, 3)},
          {"positive", uniform(n, 4, 0.5f, 2.0f)},
          {"tiny", gaussian(n, 5, 1e-4f)}};
}

}  // namespace halfbyte::test
