// Thread count for halfbyte's parallel work (OpenMP).
#pragma once

namespace halfbyte {

// Most threads any call accepts: more cannot help, and asking OpenMP for absurd
// counts (a typo, 10**6) crashes in thread creation instead of failing.
inline constexpr int kMaxThreads = 1024;

// Threads used by calls that do not ask for a number. 1 <= n <= kMaxThreads; the
// default is the number of cores OpenMP reports (OMP_NUM_THREADS if set, at most
// kMaxThreads). Throws Error(InvalidArgument) outside that range.
void set_num_threads(int n);
int num_threads() noexcept;

}  // namespace halfbyte
