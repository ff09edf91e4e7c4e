// bench_encoder: encoder (BERT / MiniLM) speed through the public C++ API, the
// Python-free counterpart of bench/encoder_vs_peers.py (which compares with the
// peers). For profiling the kernels under perf, and for per-ISA rows.
//
//   ./build/bench/bench_encoder --model=models/all-MiniLM-L6-v2 --texts=texts.txt
//   HALFBYTE_ISA=scalar ./build/bench/bench_encoder --model=... --benchmark_filter=one
//
// Per thread count (names <test>/<dtype>/t<threads>):
//   batch   all texts through embed() in batches of --batch_size (default 32):
//           counters "sentences/s", "tokens/s" and "GOP/s" (the projections' and
//           feed-forward layers' multiply-adds x 2; attention not counted)
//   one     one text per embed() call, texts taken in turn: the same counters,
//           so 1e3 / sentences/s is the single-text latency in ms
// Extra flags (besides the --benchmark_* ones):
//   --model=PATH     Hugging Face folder or GGUF (required)
//   --texts=FILE     one text per line (default: 512 generated sentences)
//   --dtype=T        weights at load (default q8_0)
//   --threads=N,M    thread counts (default 1,2)
//   --batch_size=N   texts per packed forward pass in "batch" (default 32)

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "halfbyte/halfbyte.hpp"
#include "halfbyte/model/encoder.hpp"

namespace {

using halfbyte::model::Encoder;

struct Options {
  std::string model, texts, dtype = "q8_0";
  std::vector<int> threads{1, 2};
  int batch_size = 32;
};
Options g_opt;

// Sentences of 8-40 common words (about the length of the peers' benchmark texts).
std::vector<std::string> generated_texts(int n) {
  static const char* const kWords[] = {
      "the",   "river", "market", "quietly", "engine", "summer", "of",     "a",      "bright", "letter",
      "under", "their", "house",  "walked",  "during", "rain",   "with",   "small",  "mountain", "village",
      "and",   "old",   "bridge", "carried", "news",   "from",   "north",  "while",  "children", "sang"};
  std::mt19937 rng(7);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    const int len = 8 + int(rng() % 33);
    std::string s;
    for (int w = 0; w < len; ++w) {
      if (w) s += ' ';
      s += kWords[rng() % (sizeof(kWords) / sizeof(kWords[0]))];
    }
    out.push_back(s + ".");
  }
  return out;
}

std::vector<std::string> load_texts() {
  if (g_opt.texts.empty()) return generated_texts(512);
  std::ifstream in(g_opt.texts);
  if (!in) throw std::runtime_error("bench_encoder: cannot read --texts=" + g_opt.texts);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  if (out.empty()) throw std::runtime_error("bench_encoder: " + g_opt.texts + " has no text");
  return out;
}

struct Loaded {
  std::unique_ptr<Encoder> enc;
  std::vector<std::string> texts;
  std::vector<int64_t> tokens;  // per text, [CLS] and [SEP] included
  double macs_per_token = 0;    // projections and feed-forward layers
};

// Rates of the totals over all iterations.
void add_counters(benchmark::State& st, const Loaded& l, double texts, double tokens) {
  st.counters["sentences/s"] = benchmark::Counter(texts, benchmark::Counter::kIsRate);
  st.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  st.counters["GOP/s"] = benchmark::Counter(2e-9 * l.macs_per_token * tokens, benchmark::Counter::kIsRate);
}

void register_all(const std::vector<std::string>& texts) {
  for (const int t : g_opt.threads) {
    auto l = std::make_shared<Loaded>();
    halfbyte::model::EncoderOptions o;
    o.dtype = g_opt.dtype;
    o.n_threads = t;
    l->enc = Encoder::load(g_opt.model, o);
    l->texts = texts;
    for (const std::string& s : texts) l->tokens.push_back(int64_t(l->enc->tokenize(s).ids.size()));
    const auto& c = l->enc->config();
    l->macs_per_token = double(c.n_layer) * double(4 * c.n_embd * c.n_embd + 2 * c.n_embd * c.n_ff);
    const std::string suffix = "/" + g_opt.dtype + "/t" + std::to_string(t);
    benchmark::RegisterBenchmark(("batch" + suffix).c_str(), [l](benchmark::State& st) {
      for (auto _ : st) benchmark::DoNotOptimize(l->enc->embed(l->texts, -1, g_opt.batch_size));
      double tokens = 0;
      for (const int64_t n : l->tokens) tokens += double(n);
      const double iters = double(st.iterations());
      add_counters(st, *l, double(l->texts.size()) * iters, tokens * iters);
    })->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("one" + suffix).c_str(), [l](benchmark::State& st) {
      size_t next = 0;
      double tokens = 0;
      for (auto _ : st) {
        const size_t i = next++ % l->texts.size();
        benchmark::DoNotOptimize(l->enc->embed({l->texts[i]}, -1, 1));
        tokens += double(l->tokens[i]);
      }
      add_counters(st, *l, double(st.iterations()), tokens);
    })->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
  }
}

// A positive integer flag value, or a clear error.
int positive(const char* flag, const std::string& v) {
  size_t used = 0;
  int n = 0;
  try {
    n = std::stoi(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size() || n < 1)
    throw std::runtime_error(std::string(flag) + " wants a positive integer, got '" + v + "'");
  return n;
}

bool take(const char* arg, const char* flag, std::string& value) {
  const size_t n = std::strlen(flag);
  if (std::strncmp(arg, flag, n) != 0 || arg[n] != '=') return false;
  value = arg + n + 1;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest{argv[0]};
  try {
    for (int i = 1; i < argc; ++i) {
      std::string v;
      if (take(argv[i], "--model", v)) {
        g_opt.model = v;
      } else if (take(argv[i], "--texts", v)) {
        g_opt.texts = v;
      } else if (take(argv[i], "--dtype", v)) {
        g_opt.dtype = v;
      } else if (take(argv[i], "--batch_size", v)) {
        g_opt.batch_size = positive("--batch_size", v);
      } else if (take(argv[i], "--threads", v)) {
        g_opt.threads.clear();
        for (size_t at = 0; at <= v.size();) {
          const size_t comma = v.find(',', at);
          g_opt.threads.push_back(positive("--threads", v.substr(at, comma - at)));
          if (comma == std::string::npos) break;
          at = comma + 1;
        }
      } else {
        rest.push_back(argv[i]);
      }
    }
    if (g_opt.model.empty()) {
      std::fprintf(stderr, "bench_encoder: --model=PATH (a Hugging Face folder or GGUF) is required\n");
      return 2;
    }
    register_all(load_texts());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_encoder: %s\n", e.what());
    return 1;
  }
  int n = int(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::AddCustomContext("halfbyte_isa", halfbyte::isa());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
