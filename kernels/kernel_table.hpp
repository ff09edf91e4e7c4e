// The kernel table: function pointers per operation, filled once per ISA by
// dispatch.cpp. Internal to the library (not installed).
#pragma once

#include <cstdint>

#include "halfbyte/quant/format.hpp"

namespace halfbyte::kernels {

struct KernelTable {
  const char* isa = "scalar";
  // y[0..n) = dequantized row of n elements (n a multiple of f's block size).
  void (*dequantize_row)(const quant::Format& f, const void* src, int64_t n, float* y) = nullptr;
};

// The table in use (thread-safe; chosen on first call).
const KernelTable& active();

namespace scalar {
void fill(KernelTable& t);
}

}  // namespace halfbyte::kernels
