// Quantize / dequantize throughput of the reference (header-only) code per format
// and method, single-threaded, on one 4096-wide row of N(0, 1) values.
//   ./build/bench/bench_quantize --benchmark_format=json
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "halfbyte/quant/quantize.hpp"

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

}  // namespace

BENCHMARK(BM_quantize)->ArgsProduct({{0, 1, 2, 3, 4}, {0, 1}});
BENCHMARK(BM_dequantize)->DenseRange(0, 4);
BENCHMARK_MAIN();
