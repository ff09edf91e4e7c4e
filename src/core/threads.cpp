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

}  // namespace halfbyte
