// What the CPU (and the OS) supports, read once. Internal.
#pragma once

#include <string>

namespace halfbyte::kernels {

struct CpuFeatures {
  // x86
  bool avx2 = false, fma = false, f16c = false;        // with OS YMM state
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false;                             // with OS ZMM state
  // Arm
  bool neon = false, dotprod = false, i8mm = false;
};

const CpuFeatures& cpu_features();

// One line for logs and benchmark context, e.g. "avx2 fma f16c avx512f ...".
std::string cpu_feature_string();

}  // namespace halfbyte::kernels
