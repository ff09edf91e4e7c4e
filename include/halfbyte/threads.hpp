// Thread count for halfbyte's parallel work (OpenMP).
#pragma once

namespace halfbyte {

// Threads used by calls that do not ask for a number. n >= 1; the default is the
// number of cores OpenMP reports (OMP_NUM_THREADS if set). Throws for n < 1.
void set_num_threads(int n);
int num_threads() noexcept;

}  // namespace halfbyte
