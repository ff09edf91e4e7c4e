// Run-time kernel selection. The library is built for the baseline ISA of its
// target (any x86-64, or ARMv8) plus per-ISA kernel files; at first use it picks
// the best kernels this CPU supports. HALFBYTE_ISA=<name> in the environment or
// set_isa() overrides the choice.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace halfbyte {

// Kernel sets: "scalar" (portable C++, the reference), "avx2" (AVX2 + FMA + F16C),
// "avx512" (AVX-512 F/BW/VL/DQ + VNNI), "amx" (avx512 + the integer GEMM on AMX
// tiles; offered where CPUID has AMX-TILE and AMX-INT8 and Linux grants the tile
// state), "neon" (ARMv8.2 dotprod), "neon_i8mm" (+ the i8mm matrix instructions
// for GEMM). For tests, "amx_emulated": amx's kernels on a C++ emulation of the
// tile instructions, offered on AVX-512 CPUs with HALFBYTE_AMX_EMULATION=1 in the
// environment only, never chosen by default (docs/AMX.md).

// Name of the kernel set in use, e.g. "avx512".
std::string isa();

// Kernel sets this build contains *and* this CPU can run, best last.
std::vector<std::string> available_isas();

// Kernel sets compiled into this build, whether or not this CPU can run them.
std::vector<std::string> compiled_isas();

// Selects a kernel set by name. Throws Error(InvalidArgument) for an unknown name
// and Error(Unsupported) for one this build or CPU cannot run (for "amx": saying
// which is missing, the CPU's AMX-TILE / AMX-INT8 or Linux's permission).
void set_isa(std::string_view name);

}  // namespace halfbyte
