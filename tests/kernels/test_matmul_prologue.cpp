// MatmulOptions::prologue: the rows of x produced as the product reads them.
// Every path (each ISA, precision and format; act_scale or not; 1 to 3 threads; the
// float overloads) gives bit for bit the result of the same call on x written
// beforehand, each row is produced exactly once, and before any of it is read (x
// starts as NaN, which would reach y).
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>

#include "kernel_test_util.hpp"

using namespace halfbyte;
using namespace halfbyte::test;

namespace {

struct Produced {
  std::vector<float> x;                      // what the prologue writes into
  std::unique_ptr<std::atomic<int>[]> calls;  // per row
  std::atomic<int> bad_ranges{0};             // calls with an empty or out-of-range [m0, m1)
};

// y for x written by a prologue from src (rows of K), and the per-row call counts.
template <class W>
std::vector<float> run_with_prologue(const W& w, int64_t N, const std::vector<float>& src, int64_t M, int64_t K,
                                     ops::MatmulOptions o, Produced& p) {
  p.x.assign(src.size(), NAN);
  p.bad_ranges = 0;
  p.calls.reset(new std::atomic<int>[size_t(M)]);
  for (int64_t m = 0; m < M; ++m) p.calls[size_t(m)] = 0;
  o.prologue = [&](int64_t m0, int64_t m1) {
    if (!(m0 >= 0 && m0 < m1 && m1 <= M)) {  // (Catch2 asserts on this thread only)
      ++p.bad_ranges;
      return;
    }
    for (int64_t m = m0; m < m1; ++m) {
      std::memcpy(p.x.data() + m * K, src.data() + m * K, size_t(K) * 4);
      ++p.calls[size_t(m)];
    }
  };
  std::vector<float> y(size_t(M * N), -12345.0f);
  ops::matmul(TensorView<const float>(p.x.data(), {M, K}), w, TensorView<float>(y.data(), {M, N}), o);
  return y;
}

template <class W>
std::vector<float> run_plain(const W& w, int64_t N, const std::vector<float>& x, int64_t M, int64_t K,
                             const ops::MatmulOptions& o) {
  std::vector<float> y(size_t(M * N), -12345.0f);
  ops::matmul(TensorView<const float>(x.data(), {M, K}), w, TensorView<float>(y.data(), {M, N}), o);
  return y;
}

void require_once(const Produced& p, int64_t M) {
  REQUIRE(p.bad_ranges == 0);
  for (int64_t m = 0; m < M; ++m) {
    INFO("row " << m);
    REQUIRE(p.calls[size_t(m)] == 1);
  }
}

}  // namespace

TEST_CASE("matmul: the prologue produces each row once, before it is read, on every path", "[matmul][prologue]") {
  const struct {
    int64_t M, N, K;
  } shapes[] = {{1, 17, 64}, {2, 33, 96}, {3, 48, 128}, {37, 100, 256}, {70, 40, 384}};
  uint64_t seed = 9300;
  IsaGuard guard;
  for (const auto& isa_name : isas_under_test()) {
    set_isa(isa_name);
    for (const char* name : {"q8_0", "q4_0", "q4_1"})
      for (const auto& s : shapes) {
        const quant::QMatrix q = random_weights(quant::Format::parse(name), s.N, s.K, seed++, false);
        const auto w = ops::PackedMatrix::pack(q);
        const auto x = random_activations(s.M, s.K, seed++);
        std::vector<float> scale(size_t(s.K));
        for (int64_t k = 0; k < s.K; ++k) scale[size_t(k)] = 0.5f + float(k % 7) * 0.25f;
        for (ops::Precision prec : {ops::Precision::Int8Asym, ops::Precision::Int, ops::Precision::Float,
                                    ops::Precision::NoInt8, ops::Precision::Auto})
          for (bool scaled : {false, true})
            for (int threads : {1, 2, 3}) {
              INFO(isa_name << " " << name << " M=" << s.M << " N=" << s.N << " K=" << s.K << " precision "
                            << int(prec) << (scaled ? " act_scale" : "") << " threads " << threads);
              ops::MatmulOptions o;
              o.precision = prec;
              o.n_threads = threads;
              o.act_scale = scaled ? scale.data() : nullptr;
              o.activation = ops::Activation::Gelu;
              Produced p;
              const auto got = run_with_prologue(w, s.N, x, s.M, s.K, o, p);
              require_once(p, s.M);
              const auto want = run_plain(w, s.N, x, s.M, s.K, o);
              REQUIRE(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
            }
      }
  }
  // The float overloads.
  const int64_t M = 6, N = 19, K = 40;
  const auto x = random_activations(M, K, 1);
  const auto wf = random_activations(N, K, 2);
  for (int threads : {1, 2}) {
    ops::MatmulOptions o;
    o.n_threads = threads;
    Produced p;
    const TensorView<const float> w(wf.data(), {N, K});
    const auto got = run_with_prologue(w, N, x, M, K, o, p);
    require_once(p, M);
    const auto want = run_plain(w, N, x, M, K, o);
    REQUIRE(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
  }
}
