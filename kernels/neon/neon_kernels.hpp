// Internal to kernels/neon: what gemm_i8mm.cpp borrows from the dotprod kernels
// (gemm.cpp). Plain function pointers, so no template or inline code is shared
// between the two translation units (they are compiled for different -march).
#pragma once

#include "kernel_table.hpp"

namespace halfbyte::kernels::neon {

// The dotprod integer GEMM for a family and scale type (bf16: scales are bf16).
// neon_i8mm uses it for M == 1 and for the odd row of an odd M.
GemmIntFn gemm_int_kernel(Family f, bool bf16);

}  // namespace halfbyte::kernels::neon
