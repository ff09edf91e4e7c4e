// detail::run_tasks: every task exactly once, slots private to running tasks,
// nested and concurrent calls, exceptions, a forked child, short jobs on the caller
// alone.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <catch2/catch.hpp>
#include <algorithm>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_pool.hpp"

using halfbyte::detail::parallel_ranges;
using halfbyte::detail::parallel_tasks;
using halfbyte::detail::ShortJobs;

namespace {

// Sets how short jobs run for a scope (then back to the default, measured).
struct ShortJobsGuard {
  explicit ShortJobsGuard(ShortJobs mode) { halfbyte::detail::set_short_jobs(mode); }
  ~ShortJobsGuard() { halfbyte::detail::set_short_jobs(ShortJobs::Measured); }
};

void spin_for(std::chrono::microseconds us) {
  const auto end = std::chrono::steady_clock::now() + us;
  while (std::chrono::steady_clock::now() < end) {
  }
}

// Runs a job of n tasks on `threads` threads; checks each task ran once, on a slot
// in range that no other running task held at the same time.
void check_job(int64_t n, int threads) {
  std::vector<std::atomic<int>> runs(size_t(n > 0 ? n : 1));
  std::vector<std::atomic<int>> busy(size_t(threads > 0 ? threads : 1));
  std::atomic<int> bad_slot{0}, shared_slot{0};
  parallel_tasks(n, threads, [&](int64_t t, int slot) {
    if (slot < 0 || slot >= std::max(threads, 1)) {
      bad_slot.fetch_add(1);
      return;
    }
    if (busy[size_t(slot)].exchange(1) != 0) shared_slot.fetch_add(1);
    volatile double x = 0;  // a little work, so that tasks overlap
    for (int i = 0; i < int(t % 7) * 50; ++i) x = x + i;
    runs[size_t(t)].fetch_add(1);
    busy[size_t(slot)].store(0);
  });
  CHECK(bad_slot.load() == 0);
  CHECK(shared_slot.load() == 0);
  int64_t wrong = 0;
  for (int64_t t = 0; t < n; ++t) wrong += runs[size_t(t)].load() != 1;
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("thread pool: every task runs once, on a slot no running task shares", "[threads]") {
  for (int threads : {1, 2, 3, 8})
    for (int64_t n : {0, 1, 2, 3, 5, 17, 64, 1000}) {
      CAPTURE(threads, n);
      check_job(n, threads);
    }
}

TEST_CASE("thread pool: many small jobs in a row (job numbers, descriptor ring reuse)", "[threads]") {
  // Far more jobs than the ring of job descriptors holds, with the count of tasks
  // and threads varying, so that workers meet reused descriptors.
  int64_t total = 0, expect = 0;
  for (int j = 0; j < 20000; ++j) {
    const int64_t n = 1 + j % 5;
    const int threads = 2 + j % 3;
    std::atomic<int64_t> sum{0};
    parallel_tasks(n, threads, [&](int64_t t, int) { sum.fetch_add(t + 1); });
    total += sum.load();
    expect += n * (n + 1) / 2;
  }
  CHECK(total == expect);
}

TEST_CASE("thread pool: ranges cover 0..n once, in at most the pieces asked for", "[threads]") {
  for (int64_t n : {1, 2, 7, 100, 1001})
    for (int64_t parts : {0, 1, 2, 3, 16, 5000}) {
      CAPTURE(n, parts);
      std::vector<std::atomic<int>> hit(static_cast<size_t>(n));
      std::atomic<int> pieces{0};
      parallel_ranges(n, parts, 2, [&](int64_t a, int64_t b) {
        pieces.fetch_add(1);
        for (int64_t i = a; i < b; ++i) hit[size_t(i)].fetch_add(1);
      });
      int64_t wrong = 0;
      for (auto& h : hit) wrong += h.load() != 1;
      CHECK(wrong == 0);
      CHECK(pieces.load() <= std::max<int64_t>(1, std::min(parts, n)));
    }
  int called = 0;
  parallel_ranges(0, 4, 2, [&](int64_t, int64_t) { ++called; });
  CHECK(called == 0);
}

TEST_CASE("thread pool: a call from inside a task runs inline on the task's thread", "[threads]") {
  std::atomic<int64_t> inner{0};
  std::atomic<int> inner_slots_nonzero{0};
  parallel_tasks(8, 2, [&](int64_t, int) {
    const auto me = std::this_thread::get_id();
    parallel_tasks(10, 4, [&](int64_t t, int slot) {
      if (slot != 0 || std::this_thread::get_id() != me) inner_slots_nonzero.fetch_add(1);
      inner.fetch_add(t);
    });
  });
  CHECK(inner.load() == 8 * 45);
  CHECK(inner_slots_nonzero.load() == 0);
}

TEST_CASE("thread pool: calls from several threads at once all complete", "[threads]") {
  std::atomic<int64_t> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&, c] {
      for (int j = 0; j < 2000; ++j) {
        const int64_t n = 1 + (j + c) % 9;
        std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
        parallel_tasks(n, 2, [&](int64_t t, int) { runs[size_t(t)].fetch_add(1); });
        for (auto& r : runs) wrong += r.load() != 1;
      }
    });
  for (auto& t : callers) t.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("thread pool: a task's exception reaches the caller, and the pool still works", "[threads]") {
  for (int threads : {1, 2, 4}) {
    CAPTURE(threads);
    std::atomic<int> ran{0};
    CHECK_THROWS_WITH(parallel_tasks(50, threads,
                                     [&](int64_t t, int) {
                                       ran.fetch_add(1);
                                       if (t == 3) throw std::runtime_error("task 3 failed");
                                     }),
                      "task 3 failed");
    CHECK(ran.load() >= 4);  // (tasks after a failure may be skipped)
    check_job(100, threads);
  }
}

TEST_CASE("thread pool: a forked child runs jobs on a pool of its own", "[threads]") {
#ifdef HALFBYTE_NO_FORK_TESTS
  WARN("skipped: " << HALFBYTE_NO_FORK_TESTS);
  return;
#endif
  check_job(64, 2);  // the parent's workers exist before the fork
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::atomic<int64_t> sum{0};
    for (int j = 0; j < 200; ++j) parallel_tasks(16, 2, [&](int64_t t, int) { sum.fetch_add(t); });
    _exit(sum.load() == 200 * 120 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(halfbyte::detail::pool_workers() >= 1);
}

TEST_CASE("thread pool: workers take part in jobs (the pool runs tasks in parallel)", "[threads]") {
  // Jobs of 8 tasks of ~0.2 ms each until a task runs on a worker's slot; a worker
  // that never ran within 2 s (a pool that silently runs everything inline) fails.
  // (Short jobs: with the workers whatever a busy machine would make the pool choose.)
  const ShortJobsGuard guard(ShortJobs::Workers);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::atomic<int> on_workers{0};
  while (on_workers.load() == 0 && std::chrono::steady_clock::now() < until)
    parallel_tasks(8, 2, [&](int64_t, int slot) {
      const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      while (std::chrono::steady_clock::now() < end) {
      }
      if (slot == 1) on_workers.fetch_add(1);
    });
  CHECK(on_workers.load() > 0);
  CHECK(halfbyte::detail::pool_workers() >= 1);
}

TEST_CASE("thread pool: short jobs on the caller alone when so set; longer jobs keep the workers", "[threads]") {
  // A short job (8 tasks of 10 us: the caller's part well under 250 us). With the
  // workers, some task runs on a worker's slot (within 2 s)...
  const auto short_job = [](std::vector<int>& slots) {
    parallel_tasks(8, 2, [&](int64_t t, int slot) {
      spin_for(std::chrono::microseconds(10));
      slots[size_t(t)] = slot;
    });
  };
  std::vector<int> slots(8, -1);
  {
    const ShortJobsGuard with(ShortJobs::Workers);
    CHECK_FALSE(halfbyte::detail::short_jobs_alone());
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    bool worker_ran = false;
    while (!worker_ran && std::chrono::steady_clock::now() < until) {
      short_job(slots);
      worker_ran = std::count(slots.begin(), slots.end(), 1) > 0;
    }
    CHECK(worker_ran);
  }
  // ... on the caller alone, every task runs on the caller's slot. A job is short
  // when its caller's part took under 250 us the last time it ran with the workers
  // (and stays so while it runs alone), so a call that took under 250 us in all,
  // timed here, makes the next one short. Only such next calls are checked: under a
  // sanitizer on a busy machine a preempted call can take longer, and the job that
  // follows it then rightly runs with the workers.
  const ShortJobsGuard guard(ShortJobs::Alone);
  CHECK(halfbyte::detail::short_jobs_alone());
  int checked = 0;
  bool next_short = false;
  const auto checks_until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (checked < 50 && std::chrono::steady_clock::now() < checks_until) {
    std::fill(slots.begin(), slots.end(), -1);
    const auto t0 = std::chrono::steady_clock::now();
    short_job(slots);
    const auto took = std::chrono::steady_clock::now() - t0;
    if (next_short) {
      ++checked;
      CHECK(std::count(slots.begin(), slots.end(), 0) == 8);
    }
    next_short = took < std::chrono::microseconds(250);
  }
  CHECK(checked > 0);
  // Its exception still reaches the caller, and the pool still works.
  const auto throwing = [](int64_t bad) {
    parallel_tasks(8, 2, [&](int64_t t, int) {
      if (t == bad) throw std::runtime_error("task failed");
    });
  };
  throwing(-1);
  CHECK_THROWS_WITH(throwing(3), "task failed");
  check_job(8, 2);
  // A longer job (the caller's part over 250 us) keeps using the workers.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::atomic<int> on_workers{0};
  while (on_workers.load() == 0 && std::chrono::steady_clock::now() < until)
    parallel_tasks(16, 2, [&](int64_t, int slot) {
      spin_for(std::chrono::microseconds(300));
      if (slot == 1) on_workers.fetch_add(1);
    });
  CHECK(on_workers.load() > 0);
}

TEST_CASE("thread pool: measured short jobs stay correct while other threads load every core", "[threads]") {
  // Busy threads on every CPU for a while: the pool measures and may switch short
  // jobs between the workers and the caller alone; every task still runs once.
  const ShortJobsGuard guard(ShortJobs::Measured);
  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  for (unsigned i = 0; i < std::max(1u, std::thread::hardware_concurrency()); ++i)
    busy.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
  int jobs = 0;
  while (std::chrono::steady_clock::now() < until) {
    check_job(1 + jobs % 9, 2);
    ++jobs;
  }
  stop.store(true);
  for (auto& t : busy) t.join();
  CHECK(jobs > 0);
}
