// The pool behind detail::run_tasks (core/thread_pool.hpp).
//
// One word holds the current job's number (high 32 bits) and its next unclaimed
// task (low 32 bits); a thread claims a task by a compare-and-swap that succeeds
// only while that job is still current. The job's description (function, task
// count, thread limit) lives in a ring of descriptors indexed by the job number, so
// a thread may read a description before claiming: if the job has changed since
// (the ring wraps only after 64 jobs), its compare-and-swap fails and it reads
// again. A claimed task keeps its job current until it finishes (the caller waits
// for every claimed task), so the description stays valid while it runs.
//
// Idle workers spin for a while (jobs follow each other within microseconds while
// a model runs), then sleep on a condition variable that the caller notifies only
// when a worker its job includes sleeps.
#include "core/thread_pool.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "halfbyte/core/error.hpp"
#include "halfbyte/threads.hpp"

namespace halfbyte::detail {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

using Clock = std::chrono::steady_clock;
// How long an idle worker spins before it sleeps, and how long the caller spins
// on a running task before it yields its core between checks.
constexpr auto kSpin = std::chrono::microseconds(200);
constexpr auto kCallerSpin = std::chrono::microseconds(50);
constexpr uint64_t kRing = 64;
constexpr int64_t kMaxTasksPerJob = int64_t(1) << 31;

struct alignas(64) Job {
  std::atomic<TaskFn> fn{nullptr};
  std::atomic<void*> ctx{nullptr};
  std::atomic<int64_t> n_tasks{0};
  std::atomic<int> limit{0};  // slots in [0, limit) may take part
  std::atomic<bool> failed{false};
  alignas(64) std::atomic<int64_t> done{0};
};

thread_local bool t_in_pool = false;  // a worker, or a caller inside its job

// CPUs this process may run on (its affinity mask: taskset, cgroup cpusets).
int usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

class Pool {
 public:
  void run(int64_t n_tasks, int n_threads, TaskFn fn, void* ctx);
  int workers() const noexcept { return n_workers_.load(std::memory_order_relaxed); }

 private:
  void grow(int n);
  void work(int slot, uint32_t seen);
  // Claims and runs tasks of job `job` until none is left, `slot` may not take
  // part, or the job is no longer current.
  void take_tasks(uint32_t job, int slot);
  void run_one(Job& j, int64_t task, int slot);

  alignas(64) std::atomic<uint64_t> word_{0};  // job << 32 | next task
  std::unique_ptr<std::atomic<bool>[]> asleep_{new std::atomic<bool>[kMaxThreads]()};  // by slot
  std::mutex sleep_m_;
  std::condition_variable wake_;
  std::mutex caller_m_;  // one job at a time
  std::mutex error_m_;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;  // slot i + 1; never joined (see pool())
  std::atomic<int> n_workers_{0};
  const int cpus_ = usable_cpus();
  Job ring_[kRing];
};

void Pool::run_one(Job& j, int64_t task, int slot) {
  if (!j.failed.load(std::memory_order_relaxed)) {
    try {
      j.fn.load(std::memory_order_relaxed)(j.ctx.load(std::memory_order_relaxed), task, slot);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_m_);
      if (!error_) error_ = std::current_exception();
      j.failed.store(true, std::memory_order_relaxed);
    }
  }
  j.done.fetch_add(1, std::memory_order_release);
}

void Pool::take_tasks(uint32_t job, int slot) {
  uint64_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    if (uint32_t(w >> 32) != job) return;
    Job& j = ring_[job % kRing];
    const int64_t task = int64_t(uint32_t(w));
    // (Read before the claim: if the job changed meanwhile, the claim fails.)
    if (slot >= j.limit.load(std::memory_order_relaxed) || task >= j.n_tasks.load(std::memory_order_relaxed)) return;
    if (!word_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    run_one(j, task, slot);
    w = word_.load(std::memory_order_acquire);
  }
}

// `seen`: the last job before the worker started (it takes part from the next).
void Pool::work(int slot, uint32_t seen) {
  t_in_pool = true;
  for (;;) {
    // Wait for a job after `seen`: spin, then sleep. A worker the last job did not
    // include sleeps at once; where that job had more threads than CPUs, the spin
    // yields the core between checks (a spinning worker would take it from one
    // that works).
    const int limit = ring_[seen % kRing].limit.load(std::memory_order_relaxed);
    const bool included = slot < limit, yield = limit > cpus_;
    const auto until = Clock::now() + (included ? kSpin : Clock::duration::zero());
    uint32_t job = seen;
    for (int i = 0;; ++i) {
      job = uint32_t(word_.load(std::memory_order_acquire) >> 32);
      if (job != seen) break;
      if (yield) std::this_thread::yield();
      else cpu_relax();
      if ((!included || (i & 63) == 63) && Clock::now() > until) {
        std::unique_lock<std::mutex> lock(sleep_m_);
        asleep_[slot].store(true, std::memory_order_seq_cst);
        while ((job = uint32_t(word_.load(std::memory_order_seq_cst) >> 32)) == seen) wake_.wait(lock);
        asleep_[slot].store(false, std::memory_order_relaxed);
        break;
      }
    }
    seen = job;
    take_tasks(job, slot);
  }
}

void Pool::grow(int n) {
  while (int(threads_.size()) < n) {
    const int slot = int(threads_.size()) + 1;
    const uint32_t seen = uint32_t(word_.load(std::memory_order_relaxed) >> 32);
    try {
      threads_.emplace_back([this, slot, seen] { work(slot, seen); });
    } catch (const std::system_error&) {
      return;  // the system refuses more threads: the job runs on those there are
    }
    n_workers_.store(int(threads_.size()), std::memory_order_relaxed);
  }
}

void Pool::run(int64_t n_tasks, int n_threads, TaskFn fn, void* ctx) {
  std::unique_lock<std::mutex> lock(caller_m_, std::try_to_lock);
  if (!lock.owns_lock()) {  // another thread's job holds the pool: run inline
    for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  grow(n_threads - 1);
  const uint32_t job = uint32_t(word_.load(std::memory_order_relaxed) >> 32) + 1;
  Job& j = ring_[job % kRing];
  j.fn.store(fn, std::memory_order_relaxed);
  j.ctx.store(ctx, std::memory_order_relaxed);
  j.n_tasks.store(n_tasks, std::memory_order_relaxed);
  j.limit.store(n_threads, std::memory_order_relaxed);
  j.failed.store(false, std::memory_order_relaxed);
  j.done.store(0, std::memory_order_relaxed);
  word_.store(uint64_t(job) << 32, std::memory_order_seq_cst);
  // Wake the workers this job includes that sleep (only those: a pool grown by an
  // earlier call with more threads keeps its other workers asleep, at no cost here).
  for (int s = 1; s < n_threads && s <= workers(); ++s)
    if (asleep_[s].load(std::memory_order_seq_cst)) {
      { std::lock_guard<std::mutex> sl(sleep_m_); }
      wake_.notify_all();
      break;
    }
  t_in_pool = true;
  take_tasks(job, 0);
  t_in_pool = false;
  // Every task is claimed; wait for those still running on workers.
  const auto until = Clock::now() + kCallerSpin;
  for (int i = 0; j.done.load(std::memory_order_acquire) < n_tasks; ++i) {
    cpu_relax();
    if ((i & 63) == 63 && Clock::now() > until) std::this_thread::yield();
  }
  if (j.failed.load(std::memory_order_relaxed)) {
    std::exception_ptr e;
    {
      std::lock_guard<std::mutex> el(error_m_);
      std::swap(e, error_);
    }
    std::rethrow_exception(e);
  }
}

// The pool lives as long as the process (its workers sleep when idle; joining them
// at exit would race with static destructors of whatever they last ran). A forked
// child has none of the parent's workers: it starts a new pool.
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_pool_once;

Pool& pool() {
  std::call_once(g_pool_once, [] {
    g_pool.store(new Pool);
    pthread_atfork(nullptr, nullptr, [] { g_pool.store(new Pool); });
  });
  return *g_pool.load();
}

}  // namespace

void run_tasks(int64_t n_tasks, int n_threads, TaskFn fn, void* ctx) {
  if (n_tasks <= 0) return;
  if (n_threads > kMaxThreads) n_threads = kMaxThreads;
  if (n_threads <= 1 || n_tasks == 1 || t_in_pool) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  if (n_tasks >= kMaxTasksPerJob)
    throw_invalid("run_tasks: ", n_tasks, " tasks in one call (at most ", kMaxTasksPerJob - 1, ")");
  pool().run(n_tasks, n_threads, fn, ctx);
}

int pool_workers() noexcept {
  const Pool* p = g_pool.load();
  return p ? p->workers() : 0;
}

}  // namespace halfbyte::detail
