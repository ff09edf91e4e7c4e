// GEMV / GEMM throughput per format x ISA x precision x threads.
//
//   ./build/bench/bench_matmul                                   # everything
//   ./build/bench/bench_matmul --benchmark_filter='q4_0/avx512/int/M1/' --benchmark_format=json
//
// Names: <format>/<isa>/<int|float|noint8>/M<m>/N<n>/K<k>/t<threads>. Counters:
//   wGB/s   packed weight bytes streamed per second (the GEMV roofline is DRAM or
//           cache read bandwidth: compare with bench_roofline)
//   GOP/s   2*M*N*K per second (int8 multiply-adds on the integer path)
// Shapes: K=N=4096, K=4096 N=11008 (Llama-7B MLP), K=576 N=1536 (SmolLM2 MLP),
// and K=16384 N=16384+ weights over 256 MB (the DRAM-bound case); q8_0 at
// M=1024 in MiniLM's shapes (an encoder batch: qkv, FFN up, FFN down, attention
// out) with int and noint8 (the int16 path on avx2 and avx512) precision, and on avx2
// float (the path noint8 took there before the int16 kernel); f32/f16/bf16 weights
// (fp32: Eigen on scalar, the avx2/avx512 kernels; on amx the bf16 tiles too) at M in
// {1, 16, 32, 64, 512}, 2 threads.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "halfbyte/halfbyte.hpp"

namespace {

using namespace halfbyte;

// Weights are built once per (format, N, K) and shared by every benchmark.
const ops::PackedMatrix& weights(const std::string& fmt, int64_t N, int64_t K) {
  static std::vector<std::pair<std::string, std::unique_ptr<ops::PackedMatrix>>> cache;
  const std::string key = fmt + "/" + std::to_string(N) + "/" + std::to_string(K);
  for (auto& [k, p] : cache)
    if (k == key) return *p;
  std::mt19937 rng(1);
  // Random codes and moderate scales: quantizing 256 MB of floats would take minutes.
  const quant::Format f = quant::Format::parse(fmt);
  quant::QMatrix q(f, N, K);
  for (size_t i = 0; i < q.nbytes(); ++i) q.data()[i] = uint8_t(rng());
  const size_t codes = f.has_min() ? 4 : 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t b = 0; b < K / f.block_size(); ++b) {
      uint8_t* blk = q.row(n) + size_t(b) * f.block_bytes();
      const uint16_t d = fp32_to_fp16(0.01f), m = fp32_to_fp16(-0.05f);
      std::memcpy(blk, &d, 2);
      if (codes == 4) std::memcpy(blk + 2, &m, 2);
    }
  cache.emplace_back(key, std::make_unique<ops::PackedMatrix>(ops::PackedMatrix::pack(q)));
  return *cache.back().second;
}

void BM_matmul(benchmark::State& state, std::string fmt, std::string isa_name, ops::Precision prec, int64_t M,
               int64_t N, int64_t K, int threads) {
  const ops::PackedMatrix& w = weights(fmt, N, K);
  set_isa(isa_name);
  std::vector<float> x(size_t(M * K)), y(size_t(M * N));
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  ops::MatmulOptions o;
  o.precision = prec;
  o.n_threads = threads;
  for (auto _ : state) {
    ops::matmul(TensorView<const float>(x.data(), {M, K}), w, TensorView<float>(y.data(), {M, N}), o);
    benchmark::DoNotOptimize(y.data());
  }
  const double it = double(state.iterations());
  state.counters["wGB/s"] = benchmark::Counter(it * double(w.nbytes()) / 1e9, benchmark::Counter::kIsRate);
  state.counters["GOP/s"] = benchmark::Counter(it * 2.0 * double(M * N * K) / 1e9, benchmark::Counter::kIsRate);
}

struct Shape {
  int64_t N, K;
};

// Float weights (f32, f16, bf16) [N, K]: Eigen's fp32 GEMM, or amx's bf16 tiles
// (noint8 rows; docs/AMX.md "Float weights on bf16 tiles").
void BM_matmul_dense(benchmark::State& state, std::string type, std::string isa_name, ops::Precision prec, int64_t M,
                     int64_t N, int64_t K, int threads) {
  set_isa(isa_name);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> w(size_t(N * K)), x(size_t(M * K)), y(size_t(M * N));
  for (float& v : w) v = nd(rng);
  for (float& v : x) v = nd(rng) * 20.0f;
  std::vector<f16> wh;
  std::vector<bf16> wb;
  if (type == "f16") for (float v : w) wh.push_back(f16::from_float(v));
  if (type == "bf16") for (float v : w) wb.push_back(bf16::from_float(v));
  ops::MatmulOptions o;
  o.precision = prec;
  o.n_threads = threads;
  const TensorView<const float> xv(x.data(), {M, K});
  const TensorView<float> yv(y.data(), {M, N});
  for (auto _ : state) {
    if (type == "f16") ops::matmul(xv, TensorView<const f16>(wh.data(), {N, K}), yv, o);
    else if (type == "bf16") ops::matmul(xv, TensorView<const bf16>(wb.data(), {N, K}), yv, o);
    else ops::matmul(xv, TensorView<const float>(w.data(), {N, K}), yv, o);
    benchmark::DoNotOptimize(y.data());
  }
  const double it = double(state.iterations());
  const double bytes = double(N * K) * (type == "f32" ? 4.0 : 2.0);
  state.counters["wGB/s"] = benchmark::Counter(it * bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["GOP/s"] = benchmark::Counter(it * 2.0 * double(M * N * K) / 1e9, benchmark::Counter::kIsRate);
}

// amx: the GEMM on AMX tiles, at M in {16, 32, 64, 128, 512} (its float path and
// M < 16 are avx512's); on an AMX machine avx512 gets int rows at 16 and 64 too,
// for the ratio and the crossover (docs/AMX.md). Elsewhere: one "skipped" line.
bool amx_rows() {
  const auto compiled = compiled_isas(), avail = available_isas();
  if (std::find(compiled.begin(), compiled.end(), "amx") == compiled.end()) return false;
  if (std::find(avail.begin(), avail.end(), "amx") != avail.end()) return true;
  const std::string saved = isa();
  try {
    set_isa("amx");
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_matmul: amx rows skipped: %s\n", e.what());  // stdout carries the JSON
  }
  set_isa(saved);
  return false;
}

void register_all() {
  const Shape shapes[] = {{4096, 4096}, {11008, 4096}, {1536, 576}};
  const Shape dram = {32768, 16384};  // q4_0: 302 MB, far beyond the 32 MB L3
  const int64_t Ms[] = {1, 8, 32, 128, 512};
  const char* formats[] = {"q4_0", "q4_1", "q8_0", "int4_g128"};
  const bool with_amx = amx_rows();
  for (const auto& isa_name : available_isas()) {
    for (const char* fmt : formats) {
      for (ops::Precision prec : {ops::Precision::Int, ops::Precision::Float}) {
        if (isa_name == "amx" && prec == ops::Precision::Float) continue;
        const char* pname = prec == ops::Precision::Int ? "int" : "float";
        for (int threads : {1, 2}) {
          auto add = [&](int64_t M, Shape s) {
            if (s.K % quant::Format::parse(fmt).block_size() != 0) return;  // e.g. K = 576 with group 128
            const std::string name = std::string(fmt) + "/" + isa_name + "/" + pname + "/M" + std::to_string(M) +
                                     "/N" + std::to_string(s.N) + "/K" + std::to_string(s.K) + "/t" +
                                     std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), BM_matmul, fmt, isa_name, prec, M, s.N, s.K, threads)
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
          };
          if (isa_name == "amx") {
            for (int64_t M : {16, 32, 64, 128, 512})
              for (const Shape& s : shapes) add(M, s);
            continue;
          }
          if (with_amx && isa_name == "avx512" && prec == ops::Precision::Int)
            for (int64_t M : {16, 64})
              for (const Shape& s : shapes) add(M, s);
          for (int64_t M : Ms)
            for (const Shape& s : shapes) {
              if (isa_name == "scalar" && M > 8) continue;  // minutes per call: one row suffices
              if (prec == ops::Precision::Float && M > 32) continue;
              add(M, s);
            }
          if (prec == ops::Precision::Int) add(1, dram);
        }
      }
    }
    if (isa_name == "avx2" || isa_name == "avx512" || isa_name == "amx")
      for (ops::Precision prec : {ops::Precision::Int, ops::Precision::NoInt8, ops::Precision::Float})
        for (int threads : {1, 2})
          for (int64_t M : {256, 1024})
          for (const Shape& s : {Shape{1152, 384}, Shape{1536, 384}, Shape{384, 1536}, Shape{384, 384}}) {
            // Float: the path NoInt8 took on avx2 before it had the int16 kernel.
            if (prec == ops::Precision::Float && isa_name != "avx2") continue;
            const char* pname = prec == ops::Precision::Int ? "/int" : prec == ops::Precision::NoInt8 ? "/noint8" : "/float";
            const std::string name = "q8_0/" + isa_name + pname +
                                     "/M" + std::to_string(M) + "/N" + std::to_string(s.N) + "/K" + std::to_string(s.K) + "/t" +
                                     std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), BM_matmul, "q8_0", isa_name, prec, M, s.N, s.K, threads)
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
          }
    // Float weights, 2 threads: float (fp32: avx2's and avx512's kernel, Eigen on
    // scalar, the baseline the kernels replace); on amx noint8 too (f32 on the bf16
    // tiles; f16/bf16 take them under int as well), for the ratio and the crossover.
    if (isa_name == "scalar" || isa_name == "avx2" || isa_name == "avx512" || isa_name == "amx")
      for (const char* type : {"f32", "f16", "bf16"})
        for (ops::Precision prec : {ops::Precision::Float, ops::Precision::NoInt8}) {
          if (prec == ops::Precision::NoInt8 && isa_name != "amx") continue;
          for (int64_t M : {1, 16, 32, 64, 512})
            for (const Shape& s : {Shape{4096, 4096}, Shape{1536, 576}}) {
              const std::string name = std::string(type) + "/" + isa_name +
                                       (prec == ops::Precision::Float ? "/float" : "/noint8") + "/M" +
                                       std::to_string(M) + "/N" + std::to_string(s.N) + "/K" + std::to_string(s.K) +
                                       "/t2";
              benchmark::RegisterBenchmark(name.c_str(), BM_matmul_dense, type, isa_name, prec, M, s.N, s.K, 2)
                  ->Unit(benchmark::kMicrosecond)
                  ->UseRealTime();
            }
        }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("halfbyte_isa_default", isa());
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
