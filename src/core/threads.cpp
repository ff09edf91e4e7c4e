#include "halfbyte/threads.hpp"

#include <algorithm>
#include <atomic>

#include "halfbyte/core/error.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace halfbyte {
namespace {
int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
std::atomic<int> g_threads{0};  // 0: not set yet
}  // namespace

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads) throw_invalid("set_num_threads: n must be in [1, ", kMaxThreads, "], got ", n);
  g_threads.store(n);
}

int num_threads() noexcept {
  const int n = g_threads.load();
  return n > 0 ? n : std::min(std::max(default_threads(), 1), kMaxThreads);
}

void release_thread_pool() noexcept {
// omp_pause_resource_all is OpenMP 5.0; GCC >= 10 and LLVM >= 8 ship it while still
// announcing 4.5 in _OPENMP.
#if defined(_OPENMP) && (_OPENMP >= 201811 || (defined(__clang__) && __clang_major__ >= 8) || \
                         (!defined(__clang__) && __GNUC__ >= 10))
  if (omp_in_parallel() == 0) (void)omp_pause_resource_all(omp_pause_soft);
#endif
}

}  // namespace halfbyte
