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
//
// Short jobs on a busy machine: a worker preempted while it runs a task makes the
// caller wait for that task, up to the other program's time slice (milliseconds),
// for a job that takes microseconds (decoding's matrix-vector products); and a
// worker that spins between jobs takes its share of the CPU from the caller where
// other programs compete for it. So the pool measures, from time to time, the wall
// time per task of the short jobs (those whose caller's part took less than
// kShortJob), all time counted (the caller's work between jobs too), with the
// workers and on the caller alone (kMeasure each), and runs short jobs the cheaper
// way until the next measurement: after 200 ms, the interval doubling up to 4 s
// while the answer stays the same; the caller alone only after two such answers in
// a row; no measurement on the caller alone where short jobs took less than half
// the time with the workers (as between an encoder's batches). On a quiet machine
// the workers win (~1.4x on 2 cores) and the measurements cost ~0.3%; with other
// programs busy on the cores the caller alone can win (docs/PERF.md, "Under
// contention"). Longer jobs always use every thread: a preempted worker's task
// costs them less than the worker's share gains.
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
// Short jobs with or without the workers (see the top of this file).
constexpr auto kShortJob = std::chrono::microseconds(250);
constexpr auto kMeasure = std::chrono::milliseconds(15);
constexpr int64_t kMeasureJobs = 64;   // at least, per way
constexpr double kShortShare = 0.5;    // of the time in short jobs, to measure at all
constexpr auto kPause = std::chrono::milliseconds(100);  // no job for that long: measure afresh
constexpr auto kProbeMin = std::chrono::milliseconds(200);
constexpr auto kProbeMax = std::chrono::milliseconds(4000);
constexpr size_t kKinds = 64;
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
  bool solo_now() const noexcept { return solo_.load(std::memory_order_relaxed); }

 private:
  void grow(int n);
  void work(int slot, uint32_t seen);
  // Claims and runs tasks of job `job` until none is left, `slot` may not take
  // part, or the job is no longer current.
  void take_tasks(uint32_t job, int slot);
  void run_one(Job& j, int64_t task, int slot);
  // Short jobs: whether this one runs on the caller alone (solo); and what it cost.
  bool solo(bool short_job, Clock::time_point now);
  void measured(bool solo, int64_t n_tasks, Clock::duration wall);

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
  // (The caller's alone, under caller_m_.) Per kind of job, direct-mapped: how long
  // the caller's part of its last run took.
  struct Kind {
    TaskFn fn = nullptr;
    int64_t n_tasks = 0;
    Clock::duration busy{};
  };
  Kind kinds_[kKinds];
  std::atomic<bool> solo_{false};  // the way short jobs run between measurements
  int measuring_ = 0;     // 0: none, 1: with the workers, 2: on the caller alone
  int votes_ = 0;         // measurements in a row that the caller alone won
  Clock::time_point phase_end_{};  // of the measurement, or (none) when the next starts
  Clock::time_point last_job_{};
  Clock::duration interval_ = kProbeMin;
  Clock::time_point begin_{};  // of the measurement under way
  Clock::duration inside_{};   // its short jobs' own wall time
  // Per way (with the workers, alone): the measurement's wall time (all of it: the
  // caller's work between jobs too), its short jobs' tasks and their count.
  Clock::duration wall_[2]{};
  int64_t tasks_[2]{}, jobs_[2]{};
};

size_t kind_index(TaskFn fn, int64_t n_tasks) {
  const auto h = uint64_t(reinterpret_cast<uintptr_t>(fn)) * 0x9E3779B97F4A7C15ull + uint64_t(n_tasks);
  return size_t(h >> 58) % kKinds;
}

std::atomic<int> g_short_jobs{int(ShortJobs::Measured)};

bool Pool::solo(bool short_job, Clock::time_point now) {
  if (!short_job) return false;
  const auto forced = ShortJobs(g_short_jobs.load(std::memory_order_relaxed));
  if (forced != ShortJobs::Measured) return forced == ShortJobs::Alone;
  const auto start = [&](int way) {
    measuring_ = way;
    begin_ = now;
    inside_ = {};
    phase_end_ = now + kMeasure;
    tasks_[way - 1] = jobs_[way - 1] = 0;
  };
  if (last_job_ == Clock::time_point{}) phase_end_ = now + kProbeMin;  // (the first: after a warm-up)
  if (now - last_job_ > kPause && measuring_ != 0) start(1);  // (after a pause: from the start)
  last_job_ = now;
  if (measuring_ == 0) {
    if (now >= phase_end_) start(1);
  } else if (now >= phase_end_ && jobs_[measuring_ - 1] >= kMeasureJobs) {
    wall_[measuring_ - 1] = now - begin_;
    if (measuring_ == 1 && inside_ < kShortShare * wall_[0]) {
      // Short jobs are a small part of the time here (an encoder's batches): the
      // workers, and the next look later.
      votes_ = 0;
      solo_.store(false, std::memory_order_relaxed);
      interval_ = std::min<Clock::duration>(2 * interval_, kProbeMax);
      measuring_ = 0;
      phase_end_ = now + interval_;
    } else if (measuring_ == 1) {
      start(2);
    } else {  // both measured: per task, in wall time (5% in the workers' favour)
      const double with = std::chrono::duration<double>(wall_[0]).count() / double(tasks_[0]);
      const double alone = std::chrono::duration<double>(wall_[1]).count() / double(tasks_[1]);
      // The caller alone after two such answers in a row, the workers back after one.
      const bool alone_wins = alone < 0.95 * with;
      votes_ = alone_wins ? votes_ + 1 : 0;
      const bool best = solo_.load(std::memory_order_relaxed) ? alone_wins : votes_ >= 2;
      const bool was = solo_.load(std::memory_order_relaxed);
      interval_ = best == was && votes_ != 1 ? std::min<Clock::duration>(2 * interval_, kProbeMax)
                                             : Clock::duration(kProbeMin);
      solo_.store(best, std::memory_order_relaxed);
      measuring_ = 0;
      phase_end_ = now + interval_;
    }
  }
  return measuring_ == 0 ? solo_.load(std::memory_order_relaxed) : measuring_ == 2;
}

void Pool::measured(bool solo, int64_t n_tasks, Clock::duration wall) {
  const int way = solo ? 2 : 1;
  if (measuring_ != way) return;
  tasks_[way - 1] += n_tasks;
  inside_ += wall;
  ++jobs_[way - 1];
}

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
  const auto start = Clock::now();
  Kind& kind = kinds_[kind_index(fn, n_tasks)];
  const bool short_job = kind.fn == fn && kind.n_tasks == n_tasks && kind.busy < kShortJob;
  if (solo(short_job, start)) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
    measured(true, n_tasks, Clock::now() - start);
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
  const auto claimed = Clock::now();
  const auto until = claimed + kCallerSpin;
  for (int i = 0; j.done.load(std::memory_order_acquire) < n_tasks; ++i) {
    cpu_relax();
    if ((i & 63) == 63 && Clock::now() > until) std::this_thread::yield();
  }
  kind = Kind{fn, n_tasks, claimed - start};
  if (short_job) measured(false, n_tasks, Clock::now() - start);
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

void set_short_jobs(ShortJobs mode) noexcept { g_short_jobs.store(int(mode), std::memory_order_relaxed); }

bool short_jobs_alone() noexcept {
  const auto forced = ShortJobs(g_short_jobs.load(std::memory_order_relaxed));
  if (forced != ShortJobs::Measured) return forced == ShortJobs::Alone;
  const Pool* p = g_pool.load();
  return p != nullptr && p->solo_now();
}

int pool_workers() noexcept {
  const Pool* p = g_pool.load();
  return p ? p->workers() : 0;
}

}  // namespace halfbyte::detail
