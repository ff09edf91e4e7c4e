// bench_roofline: measures this machine's limits so other benchmarks can print
// "% of roofline".
//
//   read_bw/<size>/threads:<T>      streaming read bandwidth (counter "GB/s")
//   fp32_fma/<isa>/threads:<T>      register-only fp32 FMA peak ("GFLOP/s")
//   int8_dot/<isa>/threads:<T>      register-only u8 x s8 dot peak ("GOP/s",
//                                   a multiply-add counts as 2 ops)
//   int8_tile/amx/threads:<T>       AMX tdpbssd peak, tile-register only ("GOP/s")
//
// T is 1 and N = omp_get_max_threads() (OMP_NUM_THREADS is honoured). The ISA
// of each kernel is picked at run time (__builtin_cpu_supports / getauxval);
// kernels the CPU lacks are not registered and are listed in the context key
// "roofline_skipped". The JSON context also carries "cpu_model" and
// "cpu_features". All times are wall-clock (UseRealTime), so Google Benchmark
// appends "/real_time" to every name: e.g. "read_bw/1024MiB/threads:2/real_time"
// and "int8_dot/vnni512/threads:2/real_time" are the DRAM and int8 roofs.
// The read loop's ISA is in the label and in the context key "roofline_read_isa".
//
// Read sizes: the DRAM size (default 1024 MiB), 64 MiB, 16 MiB and 512 KiB,
// split into one contiguous page-aligned chunk per thread. The buffer is
// first-touched by the same threads with the same partition as the read loop,
// outside the timed region. Small buffers are read several times per
// benchmark iteration (at least 256 MiB of traffic) so the OpenMP fork/join is
// not what gets measured.
//
// Extra flags (besides the --benchmark_* ones):
//   --roofline_dram_mib=N    size of the large read buffer in MiB (default 1024)
//   --roofline_threads=N     the "N threads" variant (default omp_get_max_threads())
//   --roofline_hugepages=0|1 madvise(MADV_HUGEPAGE) the read buffers (default 1)
//   --roofline_read_isa=X    force the read loop: avx512, avx2 or generic
//                            (default: the widest the CPU has)
//
// Contention check: every benchmark also reports "cpu_share", the process's CPU
// time over (wall time x threads) for the timed loop. Near 1.0 means our
// threads had the cores to themselves; well below (e.g. 0.5 with 2 threads on
// 2 cores while a build runs) means something else was running and the number
// is not a machine limit; the label then says "CONTENDED". It cannot see a
// neighbour that only competes for memory bandwidth (another process on the
// other core of a 1-thread read run, or another VM on the host).
//
// Example: ./build/bench/bench_roofline --benchmark_min_time=0.2
//          ./build/bench/bench_roofline --benchmark_format=json > roofline.json

#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#define HB_RL_HAVE_MMAN 1
#endif

namespace hb_roofline {

using ReadFn = std::uint64_t (*)(const void*, std::size_t);
using ComputeFn = std::uint64_t (*)(std::uint64_t, void*);

#if defined(__x86_64__) || defined(__i386__)
std::uint64_t read_avx512(const void* p, std::size_t bytes);
std::uint64_t read_avx2(const void* p, std::size_t bytes);
std::uint64_t fma_avx512(std::uint64_t iters, void* sink);
std::uint64_t fma_avx2(std::uint64_t iters, void* sink);
std::uint64_t dot_vnni512(std::uint64_t iters, void* sink);
std::uint64_t dot_vnni512_ymm(std::uint64_t iters, void* sink);
std::uint64_t dot_avxvnni(std::uint64_t iters, void* sink);
std::uint64_t dot_avx2_maddubs(std::uint64_t iters, void* sink);
const char* amx_permission();
std::uint64_t dot_amx(std::uint64_t iters, void* sink);
#endif
#if defined(__aarch64__)
bool neon_has_dotprod();
std::uint64_t fma_neon(std::uint64_t iters, void* sink);
std::uint64_t dot_sdot(std::uint64_t iters, void* sink);
#endif

namespace {

// Portable read loop (the compiler vectorises it with the baseline ISA: SSE2
// on x86-64, NEON on aarch64). `bytes` is a multiple of 512.
std::uint64_t read_generic(const void* p, std::size_t bytes) {
  const std::uint64_t* q = static_cast<const std::uint64_t*>(p);
  const std::size_t n = bytes / sizeof(std::uint64_t);
  std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  for (std::size_t i = 0; i < n; i += 8) {
    s0 += q[i + 0]; s1 += q[i + 1]; s2 += q[i + 2]; s3 += q[i + 3];
    s4 += q[i + 4]; s5 += q[i + 5]; s6 += q[i + 6]; s7 += q[i + 7];
  }
  return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

// --- options --------------------------------------------------------------------

struct Options {
  std::size_t dram_bytes = std::size_t{1024} << 20;
  int threads = 1;
  bool hugepages = true;
  std::string read_isa;  // empty: auto
};
Options g_opt;

// --- CPU description ------------------------------------------------------------

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "model name" on x86; some aarch64 kernels print "Hardware" / "CPU part" instead.
    if (line.rfind("model name", 0) == 0 || line.rfind("Hardware", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        const auto b = v.find_first_not_of(" \t");
        if (b != std::string::npos) return v.substr(b);
      }
    }
  }
#ifdef HB_RL_HAVE_MMAN
  struct utsname u;
  if (uname(&u) == 0) return std::string(u.sysname) + " " + u.release + " " + u.machine;
#endif
  return "unknown";
}

struct Features {
  std::string present, missing;
  void add(const char* name, bool has) {
    std::string& s = has ? present : missing;
    if (!s.empty()) s += ' ';
    s += name;
  }
};

// --- read buffers ---------------------------------------------------------------

// One buffer at a time (the DRAM one is 1 GiB). Re-created, and first-touched by
// `threads` threads with the read loop's partition, whenever (bytes, threads)
// changes; Google Benchmark calls a benchmark function several times while it
// settles the iteration count, so the buffer is kept across those calls.
struct Buffer {
  char* data = nullptr;
  std::size_t bytes = 0;
  int threads = 0;
  bool mapped = false;
};
Buffer g_buf;

constexpr std::size_t kPage = 4096;

// Thread t's chunk of a `bytes` buffer split over `nthreads`: contiguous,
// page-aligned, like schedule(static) over pages.
inline void chunk(std::size_t bytes, int nthreads, int t, std::size_t* begin, std::size_t* len) {
  const std::size_t pages = bytes / kPage;
  const std::size_t b = pages * static_cast<std::size_t>(t) / static_cast<std::size_t>(nthreads);
  const std::size_t e = pages * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(nthreads);
  *begin = b * kPage;
  *len = (e - b) * kPage;
}

void release_buffer() {
  if (!g_buf.data) return;
#ifdef HB_RL_HAVE_MMAN
  if (g_buf.mapped) munmap(g_buf.data, g_buf.bytes);
  else
#endif
    std::free(g_buf.data);
  g_buf = Buffer{};
}

char* get_buffer(std::size_t bytes, int threads) {
  if (g_buf.data && g_buf.bytes == bytes && g_buf.threads == threads) return g_buf.data;
  release_buffer();
  char* p = nullptr;
  bool mapped = false;
#ifdef HB_RL_HAVE_MMAN
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m != MAP_FAILED) {
    p = static_cast<char*>(m);
    mapped = true;
#ifdef MADV_HUGEPAGE
    if (g_opt.hugepages) madvise(m, bytes, MADV_HUGEPAGE);
#endif
  }
#endif
  if (!p) p = static_cast<char*>(std::aligned_alloc(kPage, bytes));
  if (!p) return nullptr;
  // First touch: each thread writes the pages it will read.
#pragma omp parallel num_threads(threads)
  {
    std::size_t b, n;
    chunk(bytes, omp_get_num_threads(), omp_get_thread_num(), &b, &n);
    std::memset(p + b, 0x5a + omp_get_thread_num(), n);
  }
  g_buf.data = p;
  g_buf.bytes = bytes;
  g_buf.threads = threads;
  g_buf.mapped = mapped;
  return p;
}

struct alignas(64) Slot {
  std::uint64_t v = 0;
  unsigned char sink[64];  // compute kernels store one vector register here
};

std::string size_name(std::size_t bytes) {
  if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0)
    return std::to_string(bytes >> 20) + "MiB";
  return std::to_string(bytes >> 10) + "KiB";
}

// --- benchmarks -----------------------------------------------------------------

// Process CPU time (all threads) in seconds; -1 where unavailable.
double process_cpu_seconds() {
#ifdef HB_RL_HAVE_MMAN
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
#endif
  return -1.0;
}

// Measures the share of `threads` cores the process got during a timed loop.
struct ShareMeter {
  std::chrono::steady_clock::time_point w0 = std::chrono::steady_clock::now();
  double c0 = process_cpu_seconds();
  // Sets the "cpu_share" counter; returns a label suffix when contended.
  std::string finish(benchmark::State& state, int threads) const {
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    const double c1 = process_cpu_seconds();
    if (c0 < 0 || c1 < 0 || wall <= 0) return "";
    const double share = (c1 - c0) / (wall * threads);
    state.counters["cpu_share"] = share;
    if (share < 0.9) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " CONTENDED(cpu_share %.2f)", share);
      return buf;
    }
    return "";
  }
};

constexpr std::size_t kMinTrafficPerIter = std::size_t{256} << 20;

void BM_read(benchmark::State& state, ReadFn fn, const char* isa, std::size_t bytes, int threads) {
  char* p = get_buffer(bytes, threads);
  if (!p) {
    state.SkipWithError("could not allocate the read buffer");
    return;
  }
  const std::size_t passes = std::max<std::size_t>(1, kMinTrafficPerIter / bytes);
  std::vector<Slot> slots(static_cast<std::size_t>(threads));
  int got_threads = threads;
  const ShareMeter meter;
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      const int nt = omp_get_num_threads();
      if (t == 0) got_threads = nt;
      std::size_t b, n;
      chunk(bytes, nt, t, &b, &n);
      std::uint64_t s = 0;
      for (std::size_t k = 0; k < passes; ++k) s += fn(p + b, n);
      slots[static_cast<std::size_t>(t)].v += s;
    }
    benchmark::DoNotOptimize(slots.data());
    benchmark::ClobberMemory();
  }
  const std::string contended = meter.finish(state, threads);
  const double total = static_cast<double>(state.iterations()) * static_cast<double>(passes) *
                       static_cast<double>(bytes);
  state.SetBytesProcessed(static_cast<std::int64_t>(total));
  state.counters["GB/s"] = benchmark::Counter(total * 1e-9, benchmark::Counter::kIsRate);
  std::string label = isa;
  if (passes > 1) label += " x" + std::to_string(passes) + " passes";
  if (got_threads != threads) label += " (only " + std::to_string(got_threads) + " threads!)";
  state.SetLabel(label + contended);
}

void BM_compute(benchmark::State& state, ComputeFn fn, const char* counter, int threads) {
  std::vector<Slot> slots(static_cast<std::size_t>(threads));
  // Size one call to ~2^29 ops (about 1-5 ms on a current core), so the
  // fork/join of each parallel region is noise. fn(1) reports ops per trip.
  const std::uint64_t ops_per_trip = fn(1, slots[0].sink);
  const std::uint64_t trips = std::max<std::uint64_t>(1, (std::uint64_t{1} << 29) / ops_per_trip);
  // Warm-up outside the timed region (wide-vector units may power up lazily).
#pragma omp parallel num_threads(threads)
  fn(trips, slots[static_cast<std::size_t>(omp_get_thread_num())].sink);
  int got_threads = threads;
  const ShareMeter meter;
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      if (t == 0) got_threads = omp_get_num_threads();
      slots[static_cast<std::size_t>(t)].v += fn(trips, slots[static_cast<std::size_t>(t)].sink);
    }
    benchmark::DoNotOptimize(slots.data());
    benchmark::ClobberMemory();
  }
  const std::string contended = meter.finish(state, threads);
  double total = 0;
  for (const Slot& s : slots) total += static_cast<double>(s.v);
  state.SetItemsProcessed(static_cast<std::int64_t>(total));
  state.counters[counter] = benchmark::Counter(total * 1e-9, benchmark::Counter::kIsRate);
  std::string label;
  if (got_threads != threads) label = "only " + std::to_string(got_threads) + " threads!";
  label += label.empty() && !contended.empty() ? contended.substr(1) : contended;
  if (!label.empty()) state.SetLabel(label);
}

void register_all() {
  Features feat;
  std::string skipped;
  auto skip = [&skipped](const std::string& what, const char* why) {
    if (!skipped.empty()) skipped += "; ";
    skipped += what + " (" + why + ")";
  };

  ReadFn read_fn = read_generic;
  const char* read_isa = "generic";
  struct ComputeEntry {
    const char* family;   // "fp32_fma" / "int8_dot"
    const char* isa;
    ComputeFn fn;         // nullptr when the CPU lacks it
    const char* why;
  };
  std::vector<ComputeEntry> compute;

#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  const bool avx512vl = __builtin_cpu_supports("avx512vl");
  const bool vnni512 = avx512 && __builtin_cpu_supports("avx512vnni");
  const bool avxvnni = avx2 && __builtin_cpu_supports("avxvnni");
  feat.add("avx2", __builtin_cpu_supports("avx2"));
  feat.add("fma", __builtin_cpu_supports("fma"));
  feat.add("avx512f", __builtin_cpu_supports("avx512f"));
  feat.add("avx512bw", __builtin_cpu_supports("avx512bw"));
  feat.add("avx512vl", avx512vl);
  feat.add("avx512vnni", __builtin_cpu_supports("avx512vnni"));
  feat.add("avxvnni", __builtin_cpu_supports("avxvnni"));
  if (avx512 && (g_opt.read_isa.empty() || g_opt.read_isa == "avx512")) {
    read_fn = read_avx512;
    read_isa = "avx512";
  } else if (avx2 && (g_opt.read_isa.empty() || g_opt.read_isa == "avx2")) {
    read_fn = read_avx2;
    read_isa = "avx2";
  }
  compute.push_back({"fp32_fma", "avx512", avx512 ? fma_avx512 : nullptr, "no AVX-512F"});
  compute.push_back({"fp32_fma", "avx2", avx2 ? fma_avx2 : nullptr, "no AVX2+FMA"});
  compute.push_back({"int8_dot", "vnni512", vnni512 ? dot_vnni512 : nullptr, "no AVX512-VNNI"});
  compute.push_back({"int8_dot", "vnni512_ymm", (vnni512 && avx512vl) ? dot_vnni512_ymm : nullptr,
                     "no AVX512-VNNI+VL"});
  compute.push_back({"int8_dot", "avxvnni", avxvnni ? dot_avxvnni : nullptr, "no AVX-VNNI"});
  compute.push_back({"int8_dot", "avx2_maddubs", avx2 ? dot_avx2_maddubs : nullptr, "no AVX2"});
  // AMX tiles: a family of its own ("int8_tile"), so "int8_dot"'s best stays the
  // vector-unit peak the avx512 kernels are measured against.
  const char* amx_why = amx_permission();
  feat.add("amx_int8", *amx_why == 0);
  compute.push_back({"int8_tile", "amx", *amx_why == 0 ? dot_amx : nullptr, amx_why});
#elif defined(__aarch64__)
  const bool dotprod = neon_has_dotprod();
  feat.add("neon", true);
  feat.add("dotprod", dotprod);
  read_isa = "generic(neon)";
  compute.push_back({"fp32_fma", "neon", fma_neon, ""});
  compute.push_back({"int8_dot", "sdot", dotprod ? dot_sdot : nullptr, "no dotprod"});
#endif

  const int nthreads = g_opt.threads;
  std::vector<int> thread_counts{1};
  if (nthreads > 1) thread_counts.push_back(nthreads);

  const std::size_t sizes[] = {g_opt.dram_bytes, std::size_t{64} << 20, std::size_t{16} << 20,
                               std::size_t{512} << 10};
  for (std::size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    const std::size_t bytes = sizes[i];
    if (std::find(sizes, sizes + i, bytes) != sizes + i) continue;  // --roofline_dram_mib=64 etc.
    for (int t : thread_counts) {
      const std::string name =
          "read_bw/" + size_name(bytes) + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), BM_read, read_fn, read_isa, bytes, t)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (const ComputeEntry& c : compute) {
    if (!c.fn) {
      skip(std::string(c.family) + "/" + c.isa, c.why);
      continue;
    }
    const char* counter = std::strcmp(c.family, "fp32_fma") == 0 ? "GFLOP/s" : "GOP/s";
    for (int t : thread_counts) {
      const std::string name =
          std::string(c.family) + "/" + c.isa + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), BM_compute, c.fn, counter, t)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }

  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("cpu_features", feat.present);
  benchmark::AddCustomContext("cpu_features_missing", feat.missing.empty() ? "-" : feat.missing);
  benchmark::AddCustomContext("roofline_read_isa", read_isa);
  benchmark::AddCustomContext("roofline_skipped", skipped.empty() ? "-" : skipped);
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
  benchmark::AddCustomContext("roofline_threads", std::to_string(nthreads));
  benchmark::AddCustomContext("roofline_hugepages", g_opt.hugepages ? "madvise" : "off");
}

bool parse_flag(const char* arg, const char* name, long* out) {
  const std::size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  char* end = nullptr;
  const long v = std::strtol(arg + n + 1, &end, 10);
  if (end == arg + n + 1 || *end != '\0') {
    std::fprintf(stderr, "bench_roofline: bad value in %s\n", arg);
    std::exit(1);
  }
  *out = v;
  return true;
}

}  // namespace
}  // namespace hb_roofline

int main(int argc, char** argv) {
  using namespace hb_roofline;
  benchmark::Initialize(&argc, argv);
  g_opt.threads = omp_get_max_threads();
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    long v = 0;
    if (parse_flag(argv[i], "--roofline_dram_mib", &v)) {
      if (v < 1) { std::fprintf(stderr, "bench_roofline: --roofline_dram_mib must be >= 1\n"); return 1; }
      g_opt.dram_bytes = static_cast<std::size_t>(v) << 20;
    } else if (parse_flag(argv[i], "--roofline_threads", &v)) {
      if (v < 1) { std::fprintf(stderr, "bench_roofline: --roofline_threads must be >= 1\n"); return 1; }
      g_opt.threads = static_cast<int>(v);
    } else if (std::strncmp(argv[i], "--roofline_read_isa=", 20) == 0) {
      g_opt.read_isa = argv[i] + 20;
      if (g_opt.read_isa != "avx512" && g_opt.read_isa != "avx2" && g_opt.read_isa != "generic") {
        std::fprintf(stderr, "bench_roofline: --roofline_read_isa must be avx512, avx2 or generic\n");
        return 1;
      }
    } else if (parse_flag(argv[i], "--roofline_hugepages", &v)) {
      g_opt.hugepages = v != 0;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  release_buffer();
  return 0;
}
