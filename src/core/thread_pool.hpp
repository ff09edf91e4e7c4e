// halfbyte's worker threads for the token path (matmul, attention, the layers'
// passes). Work is split into tasks that whichever thread runs claims, so a call
// never waits for a thread that has not started: on a busy machine, where a worker
// may sleep for a scheduler time slice before it runs, the caller does the work
// itself instead of waiting at a barrier (OpenMP's parallel regions end in one).
// Packing weights at load runs here too; quantizing (offline, or an encoder's
// dtype= at load) stays on OpenMP.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace halfbyte::detail {

using TaskFn = void (*)(void* ctx, int64_t task, int slot);

// Runs fn(ctx, task, slot) for every task in [0, n_tasks) on up to n_threads
// threads (the caller and n_threads - 1 pool workers) and returns when all have
// run. `slot` is in [0, n_threads): 0 is the caller, a worker always has the same
// one, and no two tasks running at once share it (per-thread scratch). Tasks are
// claimed one at a time in increasing order. A worker that wakes after every task
// has been claimed is not waited for. Runs inline, in order, with slot 0 when
// n_threads <= 1, n_tasks <= 1, from inside a task, or while another thread's
// call holds the pool, and for short jobs that run on the caller alone (below). The
// first exception a task throws is rethrown here, after the tasks already claimed
// have finished (the others are skipped).
void run_tasks(int64_t n_tasks, int n_threads, TaskFn fn, void* ctx);

// fn(task, slot) for task in [0, n_tasks), as run_tasks.
template <class F>
void parallel_tasks(int64_t n_tasks, int n_threads, F&& fn) {
  using Fn = std::remove_reference_t<F>;
  run_tasks(
      n_tasks, n_threads, [](void* c, int64_t task, int slot) { (*static_cast<Fn*>(c))(task, slot); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

// fn(begin, end) over [0, n) in `parts` contiguous ranges of (nearly) equal size
// (parts is clamped to [1, n]), claimed as tasks by up to n_threads threads.
template <class F>
void parallel_ranges(int64_t n, int64_t parts, int n_threads, F&& fn) {
  if (n <= 0) return;
  if (parts > n) parts = n;
  if (parts < 1) parts = 1;
  parallel_tasks(parts, n_threads, [&](int64_t p, int) { fn(n * p / parts, n * (p + 1) / parts); });
}

// How short jobs (the caller's part under 250 us, as decoding's) run: by default the
// cheaper of with the workers or on the caller alone, measured from time to time
// (thread_pool.cpp: on a busy machine a preempted worker stalls them); or always one
// way (tests). Longer jobs always use every thread they ask for.
enum class ShortJobs { Measured, Workers, Alone };
void set_short_jobs(ShortJobs mode) noexcept;
// Whether short jobs run on the caller alone now.
bool short_jobs_alone() noexcept;

// Workers the pool has started so far (for tests and `halfbyte info`).
int pool_workers() noexcept;

}  // namespace halfbyte::detail
