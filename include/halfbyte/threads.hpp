// Thread count for halfbyte's parallel work. Model steps and matmul run on
// halfbyte's own worker threads (one pool per process; work is claimed in tasks
// by whichever thread runs, so a call never waits for a worker that has not
// started), and so does packing at load; quantizing runs on OpenMP. Steps of a few
// microseconds (decoding's) run on the calling thread alone while the pool measures
// that to be faster (other programs busy on the cores); the count is an upper bound.
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

// Ends the OpenMP worker threads that the calling thread's parallel work started
// (loading and quantizing; the next such call starts them again, ~0.1 ms). GCC's
// OpenMP keeps one pool per thread that runs parallel work, and an idle pool's
// threads linger; Model::load, Encoder::load and Model::generate call this when
// they finish. The pool that runs model steps and matmul is not affected (its
// workers sleep when idle).
void release_thread_pool() noexcept;

}  // namespace halfbyte
