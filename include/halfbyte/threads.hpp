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

// Ends the OpenMP worker threads that the calling thread's parallel work started
// (the next parallel call starts them again, ~0.1 ms). GCC's OpenMP keeps one pool
// per thread that runs parallel work; while the pool of an idle thread lives, the
// pool of another thread wakes through the kernel on every parallel region: on 2
// cores, a model used from a thread other than the one that loaded it decoded 3x
// slower (measured: 128 vs 402 tokens/s). Model::load, Encoder::load and
// Model::generate call this when they finish, so loading on one thread and
// generating on another (a Python worker thread, a server's request thread) runs
// at full speed. Affects only the calling thread's pool.
void release_thread_pool() noexcept;

}  // namespace halfbyte
