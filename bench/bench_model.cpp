// bench_model: end-to-end model speed, llama-bench style, through the public
// C++ API (Model::load, reset, eval).
//
//   ./build/bench/bench_model --model=models/SmolLM2-135M-Instruct.Q4_1.gguf --model=/tmp/models/x.gguf
//   HALFBYTE_BENCH_MODELS=a.gguf:b.gguf ./build/bench/bench_model --benchmark_format=json
//
// Per model file, two benchmarks (names <test>/<file name>/t<threads>):
//   pp512   reset, then the 512-token prompt in one eval() call (the model's
//           n_batch tokens per forward pass): counter "tokens/s"
//   tg128   reset, then 128 tokens fed one eval() call each, from an empty cache
//           (as llama-bench's tg128): counters "tokens/s" and "wGB/s", the
//           model's own weight bytes (Model::memory().weights_owned) streamed
//           per second, to compare with bench_roofline's read bandwidth
// Tokens are fixed pseudo-random ids (llama-bench feeds random tokens too), so
// no tokenizer work is timed.
//
// Extra flags (besides the --benchmark_* ones):
//   --model=PATH        a GGUF file (repeat for more; appended to HALFBYTE_BENCH_MODELS,
//                       a ':'-separated list)
//   --threads=N         threads per model (default: halfbyte::num_threads())
//   --n_prompt=N        prompt length of pp (default 512; 0 skips pp)
//   --n_gen=N           tokens of tg (default 128; 0 skips tg)
//   --n_batch=N         tokens per forward pass in pp (default: LoadOptions' 256)
//
// The JSON context carries "halfbyte_isa" and, per model, "model:<name>" with
// its path, size, architecture and shape.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "halfbyte/halfbyte.hpp"
#include "halfbyte/model/model.hpp"

namespace {

using halfbyte::model::Model;

struct Options {
  std::vector<std::string> models;
  int threads = 0;
  int64_t n_prompt = 512;
  int64_t n_gen = 128;
  int64_t n_batch = 0;
};
Options g_opt;

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Fixed ids in [0, n_vocab): the same for every run and every model of one vocabulary.
std::vector<int32_t> token_ids(int64_t n, int64_t n_vocab) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> d(0, int32_t(n_vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& t : ids) t = d(rng);
  return ids;
}

void BM_pp(benchmark::State& state, Model* m, int64_t n) {
  const std::vector<int32_t> ids = token_ids(n, m->config().n_vocab);
  for (auto _ : state) {
    m->reset();
    benchmark::DoNotOptimize(m->eval(ids));
  }
  state.counters["tokens/s"] =
      benchmark::Counter(double(state.iterations()) * double(n), benchmark::Counter::kIsRate);
}

void BM_tg(benchmark::State& state, Model* m, int64_t n) {
  const std::vector<int32_t> ids = token_ids(n, m->config().n_vocab);
  std::vector<int32_t> one(1);
  for (auto _ : state) {
    m->reset();
    for (int32_t t : ids) {
      one[0] = t;
      benchmark::DoNotOptimize(m->eval(one));
    }
  }
  const double tokens = double(state.iterations()) * double(n);
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["wGB/s"] =
      benchmark::Counter(tokens * double(m->memory().weights_owned) / 1e9, benchmark::Counter::kIsRate);
}

// Loads every model and registers its benchmarks; false (after a message) if one fails.
bool register_all(std::vector<std::unique_ptr<Model>>& loaded) {
  halfbyte::model::LoadOptions lo;
  lo.n_threads = g_opt.threads > 0 ? g_opt.threads : halfbyte::num_threads();
  lo.n_ctx = std::max(g_opt.n_prompt, g_opt.n_gen) + 1;
  if (g_opt.n_batch > 0) lo.n_batch = g_opt.n_batch;
  const std::string t = "/t" + std::to_string(lo.n_threads);
  for (const std::string& path : g_opt.models) {
    try {
      loaded.push_back(Model::load(path, lo));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_model: cannot load %s: %s\n", path.c_str(), e.what());
      return false;
    }
    Model* m = loaded.back().get();
    const std::string name = base_name(path);
    const auto& c = m->config();
    char desc[512];
    std::snprintf(desc, sizeof desc, "%s; arch %s, %lld layers, n_embd %lld, n_ff %lld, n_vocab %lld; weights %.1f MB",
                  path.c_str(), c.arch.c_str(), (long long)c.n_layer, (long long)c.n_embd, (long long)c.n_ff,
                  (long long)c.n_vocab, double(m->memory().weights_owned) / 1e6);
    benchmark::AddCustomContext("model:" + name, desc);
    if (g_opt.n_prompt > 0)
      benchmark::RegisterBenchmark(("pp" + std::to_string(g_opt.n_prompt) + "/" + name + t).c_str(), BM_pp, m,
                                   g_opt.n_prompt)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    if (g_opt.n_gen > 0)
      benchmark::RegisterBenchmark(("tg" + std::to_string(g_opt.n_gen) + "/" + name + t).c_str(), BM_tg, m,
                                   g_opt.n_gen)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  }
  return true;
}

// "--name=value" with an integer value >= lo; exits with a message if malformed.
bool int_flag(const char* arg, const char* name, long lo, int64_t* out) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  char* end = nullptr;
  const long v = std::strtol(arg + n + 1, &end, 10);
  if (end == arg + n + 1 || *end != '\0' || v < lo) {
    std::fprintf(stderr, "bench_model: %s must be an integer >= %ld, got '%s'\n", name, lo, arg + n + 1);
    std::exit(1);
  }
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (const char* env = std::getenv("HALFBYTE_BENCH_MODELS")) {
    std::string s = env;
    for (size_t b = 0; b <= s.size();) {
      size_t e = s.find(':', b);
      if (e == std::string::npos) e = s.size();
      if (e > b) g_opt.models.push_back(s.substr(b, e - b));
      b = e + 1;
    }
  }
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    int64_t v = 0;
    if (std::strncmp(argv[i], "--model=", 8) == 0) {
      g_opt.models.push_back(argv[i] + 8);
    } else if (int_flag(argv[i], "--threads", 1, &v)) {
      g_opt.threads = int(v);
    } else if (int_flag(argv[i], "--n_prompt", 0, &g_opt.n_prompt) || int_flag(argv[i], "--n_gen", 0, &g_opt.n_gen) ||
               int_flag(argv[i], "--n_batch", 1, &g_opt.n_batch)) {
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (g_opt.models.empty()) {
    std::fprintf(stderr,
                 "bench_model: no model given: pass --model=PATH (repeatable) or set HALFBYTE_BENCH_MODELS "
                 "(a ':'-separated list of GGUF files)\n");
    return 1;
  }
  std::vector<std::unique_ptr<Model>> loaded;
  if (!register_all(loaded)) return 1;
  benchmark::AddCustomContext("halfbyte_isa", halfbyte::isa());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
