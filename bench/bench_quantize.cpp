// Quantize / dequantize throughput of the reference (header-only) code per format
// and method, single-threaded, on one 4096-wide row of N(0, 1) values; and the
// GEMMs' activation quantizers per ISA (act/<isa>/<kind>/K<k>: 256 rows, values/s).
//   ./build/bench/bench_quantize --benchmark_format=json
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "halfbyte/quant/quantize.hpp"
#include "halfbyte/runtime.hpp"
#include "kernel_table.hpp"

namespace {

namespace q = halfbyte::quant;
constexpr int64_t kCols = 4096;
const char* kNames[] = {"q4_0", "q4_1", "q8_0", "int4_g128", "int4a_g64"};

std::vector<float> row() {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(kCols);
  for (float& v : x) v = d(rng);
  return x;
}

void BM_quantize(benchmark::State& state) {
  const q::Format f = q::Format::parse(kNames[state.range(0)]);
  q::QuantizeOptions o;
  o.method = state.range(1) ? q::Method::Auto : q::Method::RTN;
  const auto x = row();
  std::vector<uint8_t> out(q::row_bytes(f, kCols));
  for (auto _ : state) {
    q::quantize_row(f, x.data(), kCols, out.data(), o);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(f.name() + (state.range(1) ? " auto" : " rtn"));
  state.SetItemsProcessed(state.iterations() * kCols);
}

void BM_dequantize(benchmark::State& state) {
  const q::Format f = q::Format::parse(kNames[state.range(0)]);
  const auto x = row();
  std::vector<uint8_t> packed(q::row_bytes(f, kCols));
  q::quantize_row(f, x.data(), kCols, packed.data());
  std::vector<float> y(kCols);
  for (auto _ : state) {
    q::dequantize_row(f, packed.data(), kCols, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(f.name());
  state.SetItemsProcessed(state.iterations() * kCols);
  state.SetBytesProcessed(state.iterations() * int64_t(packed.size()));
}

// Activations like an encoder's: LayerNorm outputs (a few outlier channels) for
// "sym" and "asym" (and "asym_smooth": divided by per-channel scales first), GELU
// outputs (bounded below by -0.17) for "asym_gelu".
constexpr int64_t kActRows = 256;

std::vector<float> activations(int64_t K, bool gelu) {
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(size_t(kActRows * K));
  for (int64_t m = 0; m < kActRows; ++m)
    for (int64_t k = 0; k < K; ++k) {
      float v = d(rng) * (k % 97 == 5 ? 8.0f : 1.0f) + 0.1f * float(k % 7);
      if (gelu) v = 0.5f * v * (1.0f + std::erf(v / std::sqrt(2.0f)));
      x[size_t(m * K + k)] = v;
    }
  return x;
}

void BM_quantize_act(benchmark::State& state, std::string isa_name, std::string kind, int64_t K) {
  halfbyte::set_isa(isa_name);
  const auto& kt = halfbyte::kernels::active();
  const auto x = activations(K, kind == "asym_gelu");
  std::vector<float> inv_scale(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) inv_scale[size_t(k)] = 1.0f / (1.0f + float(k % 5));
  std::vector<int8_t> qs(x.size());
  std::vector<halfbyte::kernels::ActBlock> meta(size_t(kActRows * K / 32));
  const float* scale = kind == "asym_smooth" ? inv_scale.data() : nullptr;
  for (auto _ : state) {
    for (int64_t m = 0; m < kActRows; ++m) {
      if (kind == "sym")
        kt.quantize_act(x.data() + m * K, K, qs.data() + m * K, meta.data() + m * K / 32);
      else
        kt.quantize_act_asym(x.data() + m * K, K, scale, qs.data() + m * K, meta.data() + m * K / 32);
    }
    benchmark::DoNotOptimize(qs.data());
    benchmark::DoNotOptimize(meta.data());
  }
  state.SetItemsProcessed(state.iterations() * kActRows * K);
}

void register_act_benchmarks() {
  for (const auto& isa_name : halfbyte::available_isas()) {
    halfbyte::set_isa(isa_name);
    const auto& kt = halfbyte::kernels::active();
    for (const char* kind : {"sym", "asym", "asym_smooth", "asym_gelu"}) {
      if (std::string(kind) != "sym" && !kt.quantize_act_asym) continue;
      for (int64_t K : {384, 1536}) {
        const std::string name = "act/" + isa_name + "/" + kind + "/K" + std::to_string(K);
        benchmark::RegisterBenchmark(name.c_str(), BM_quantize_act, isa_name, std::string(kind), K);
      }
    }
  }
}

}  // namespace

BENCHMARK(BM_quantize)->ArgsProduct({{0, 1, 2, 3, 4}, {0, 1}});
BENCHMARK(BM_dequantize)->DenseRange(0, 4);

int main(int argc, char** argv) {
  register_act_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
