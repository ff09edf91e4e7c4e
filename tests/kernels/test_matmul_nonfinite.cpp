// Non-finite activations: a row of x holding a NaN or an infinity gives a row of y
// with no finite value, on every ISA, precision, format, thread count and path
// (GEMV, arranged tiles, tile GEMMs), and the other rows are unchanged: the same
// bits as with the bad rows replaced by finite values. (The quantizing paths
// used to drop a NaN, as fmax does, and return finite numbers for its row.)
#include "kernel_table.hpp"
#include "kernel_test_util.hpp"

using namespace halfbyte;
using namespace halfbyte::test;

TEST_CASE("matmul: a NaN or an infinity in x makes its row of y non-finite, other rows unchanged", "[matmul]") {
  const char* formats[] = {"q4_0", "q4_1", "q8_0", "int4a_g64"};
  const int64_t N = 37;
  for (const auto& isa_name : isas_under_test()) {
    set_isa(isa_name);
    for (const char* fname : formats) {
      const quant::Format f = quant::Format::parse(fname);
      // M: GEMV (1), small GEMMs, and enough rows for the arranged and tile kernels.
      for (const int64_t M : {1, 3, 40})
        for (const int64_t K : {int64_t(f.block_size() * 2), int64_t(384)}) {
          const auto q = random_weights(f, N, K, uint64_t(11 + M + K), false);
          const auto p = ops::PackedMatrix::pack(q);
          auto x = random_activations(M, K, uint64_t(5 + M * K));
          auto clean = x;
          std::mt19937_64 rng{uint64_t(M * 31 + K)};
          // Row 0 a NaN (the only row of a GEMV), the last row an infinity, a middle
          // row NaN and -infinity in different blocks.
          std::vector<bool> bad(size_t(M), false);
          const auto poison = [&](int64_t m, float v) {
            x[size_t(m * K + int64_t(rng() % uint64_t(K)))] = v;
            bad[size_t(m)] = true;
          };
          poison(0, NAN);
          if (M > 1) poison(M - 1, INFINITY);
          if (M > 2) {
            poison(M / 2, NAN);
            poison(M / 2, -INFINITY);
          }
          for (const auto prec : {ops::Precision::Int, ops::Precision::Int8Asym, ops::Precision::NoInt8,
                                  ops::Precision::Float})
            for (const int nt : {1, 2}) {
              INFO(isa_name << " " << fname << " M=" << M << " K=" << K << " precision " << int(prec) << " threads "
                            << nt);
              ops::MatmulOptions o;
              o.precision = prec;
              o.n_threads = nt;
              std::vector<float> y(size_t(M * N), 0.0f), want(size_t(M * N), 0.0f);
              ops::matmul(TensorView<const float>(x.data(), {M, K}), p, TensorView<float>(y.data(), {M, N}), o);
              ops::matmul(TensorView<const float>(clean.data(), {M, K}), p, TensorView<float>(want.data(), {M, N}), o);
              for (int64_t m = 0; m < M; ++m)
                for (int64_t n = 0; n < N; ++n) {
                  const float v = y[size_t(m * N + n)];
                  if (bad[size_t(m)]) {
                    INFO("row " << m << " n " << n << " = " << v);
                    REQUIRE(!std::isfinite(v));
                  } else {
                    INFO("row " << m << " n " << n);
                    REQUIRE(std::memcmp(&v, &want[size_t(m * N + n)], sizeof v) == 0);
                  }
                }
            }
        }
    }
  }
}
