// Run-time kernel selection. The library is built for the baseline ISA of its
// target (any x86-64, or ARMv8) plus per-ISA kernel files; at first use it picks
// the best kernels this CPU supports. HALFBYTE_ISA=<name> in the environment or
// set_isa() overrides the choice.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace halfbyte {

// Name of the kernel set in use, e.g. "scalar".
std::string isa();

// Kernel sets this build contains *and* this CPU can run, best last.
std::vector<std::string> available_isas();

// Selects a kernel set by name. Throws Error(InvalidArgument) for an unknown name
// and Error(Unsupported) for one this build or CPU cannot run.
void set_isa(std::string_view name);

}  // namespace halfbyte
