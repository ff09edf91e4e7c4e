// What the CPU (and the OS) supports, read once. Internal.
#pragma once

#include <string>

namespace halfbyte::kernels {

struct CpuFeatures {
  // x86
  bool avx2 = false, fma = false, f16c = false;        // with OS YMM state
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false;                             // with OS ZMM state
  bool avx512bf16 = false;                             // CPUID leaf 7 subleaf 1, with OS ZMM state
  // AMX: CPUID leaf 7 EDX, the OS tile state in XCR0 (bits 17 XTILECFG, 18
  // XTILEDATA), and Linux's per-process permission for XTILEDATA, requested once
  // (arch_prctl ARCH_REQ_XCOMP_PERM) when the first three are present.
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool amx_os = false;
  bool amx_granted = false;
  int amx_refused_errno = 0;  // errno of the refused request (0: not refused / not asked)
  // Arm
  bool neon = false, dotprod = false, i8mm = false;
};

const CpuFeatures& cpu_features();

// One line for logs and benchmark context, e.g. "avx2 fma f16c avx512f ...".
std::string cpu_feature_string();

}  // namespace halfbyte::kernels
