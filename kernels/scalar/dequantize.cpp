// Scalar kernels: the reference implementations from the public headers, compiled
// for the baseline ISA. Every other ISA is tested against these.
#include "halfbyte/quant/quantize.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::scalar {

static void dequantize_row(const quant::Format& f, const void* src, int64_t n, float* y) {
  quant::dequantize_row(f, src, n, y);
}

void fill(KernelTable& t) {
  t.isa = "scalar";
  t.dequantize_row = dequantize_row;
}

}  // namespace halfbyte::kernels::scalar
