// Every ISA x precision x format against the oracle (double-precision x . W^T of
// the dequantized weights) and against the scalar kernels, over a randomized
// sweep of shapes with tails, plus adversarial weights and activations.
//
// Error bounds (u = 2^-24, the fp32 unit roundoff):
//   float path:   |y - y*| <= (K/32 + 34) u * sum_k |w_k x_k|
//       (a 32-term fp32 FMA chain per block, then one FMA per block)
//   integer path: |y - y*| <= sum_k |w_k| d_x(k) / 2 + (K/32 + 34) u * (sum_k |w_k x_k| + that)
//       (each activation moves by at most half its block's step d_x = amax/127)
//   and every ISA's integer path equals the scalar kernels bit for bit (the
//   contract in kernels/kernel_table.hpp), for any thread count;
//   int16 path (NoInt8 without tiles, ISAs with gemm_i16):
//                 the integer bound with d_x = amax/32767, and bit for bit scalar::gemm_i16;
//   except GEMMs on amx's bf16 tiles (M >= tile_min_rows, kernels/amx/tile_gemm_bf16.inl):
//                 |y - y*| <= (2^-7 + 2^-16 + K 2^-23) sum_k |w_k x_k|
#include "kernel_table.hpp"
#include "kernel_test_util.hpp"

using namespace halfbyte;
using namespace halfbyte::test;

namespace {

const char* kFormats[] = {"q4_0", "q4_1", "q8_0", "int4_g64", "int4a_g128", "int4_g32_bf16", "int4a_g64_bf16"};

struct Shape {
  int64_t M, N, K;
};

std::vector<Shape> shapes_for(const quant::Format& f, uint64_t seed) {
  const int64_t Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 33, 64};
  const int64_t Ns[] = {1, 5, 15, 16, 17, 31, 33, 100, 257};
  std::mt19937_64 rng{seed};
  const int64_t g = f.block_size();
  std::vector<Shape> s = {{1, 17, g}, {3, 16, 2 * g}, {9, 1, 4096 + g - (4096 % g == 0 ? 0 : 4096 % g)},
                          {64, 33, 4096 + 128}, {1, 257, 4096 + 128},
                          // arranged integer tiles: 3 + 3 + 1 and 2 groups, partial last groups
                          {17, 117, 6 * g}, {16, 40, 4 * g}, {37, 48, 2 * g},
                          // 2 threads take 19 groups in dynamic chunks of 2 (the last: 1, partial)
                          {5, 300, 3 * g},
                          // arranged tiles of 4 rows, then a last tile of 2 or 3
                          {10, 40, 2 * g}, {35, 33, 3 * g}};
  for (int i = 0; i < 10; ++i) {
    const int64_t K = g * int64_t(1 + rng() % (1024 / g * 2));
    s.push_back({Ms[rng() % std::size(Ms)], Ns[rng() % std::size(Ns)], K});
  }
  return s;
}

// The int16 path's reference: scalar::quantize_act16 and scalar::gemm_i16.
std::vector<float> run_scalar_i16(const ops::PackedMatrix& p, const std::vector<float>& x, int64_t M) {
  const int64_t K = p.cols();
  std::vector<int16_t> qs(size_t(M * K));
  std::vector<kernels::ActBlock> meta(size_t(M * K / 32));
  for (int64_t m = 0; m < M; ++m)
    kernels::scalar::quantize_act16(x.data() + m * K, K, qs.data() + m * K, meta.data() + m * K / 32);
  std::vector<float> y(size_t(M * p.rows()), -12345.0f);
  const kernels::Packed pk = kernels::Packed::of(p);
  const kernels::GemmTask t{0, (p.rows() + 15) / 16, 0, M, y.data(), p.rows()};
  kernels::scalar::gemm_i16(pk.family)(pk, kernels::ActQ16{qs.data(), meta.data(), K}, t);
  return y;
}

std::vector<float> run(const ops::PackedMatrix& p, const std::vector<float>& x, int64_t M,
                       ops::Precision prec, int threads) {
  std::vector<float> y(size_t(M * p.rows()), -12345.0f);
  ops::MatmulOptions o;
  o.precision = prec;
  o.n_threads = threads;
  ops::matmul(TensorView<const float>(x.data(), {M, p.cols()}), p, TensorView<float>(y.data(), {M, p.rows()}), o);
  return y;
}

void check_case(const quant::Format& f, const Shape& s, uint64_t seed, bool adversarial) {
  const quant::QMatrix q = random_weights(f, s.N, s.K, seed, adversarial);
  const auto x = random_activations(s.M, s.K, seed + 1);
  const auto w = dequantized(q);
  const Oracle o = oracle(w, x, s.M, s.N, s.K);
  const auto p = ops::PackedMatrix::pack(q);
  const double u = std::ldexp(1.0, -24), gamma = (double(s.K) / 32 + 34) * u;
  IsaGuard guard;
  set_isa("scalar");
  const auto y_scalar_int = run(p, x, s.M, ops::Precision::Int, 1);
  const auto y_scalar_i16 = run_scalar_i16(p, x, s.M);
  for (size_t k = 0; k < y_scalar_i16.size(); ++k) {
    const double wabs_dx16 = o.wabs_dx[k] * (127.0 / 32767.0);
    INFO(f.name() << " scalar int16 M=" << s.M << " N=" << s.N << " K=" << s.K << " at " << k);
    REQUIRE(std::fabs(double(y_scalar_i16[k]) - o.y[k]) <= (wabs_dx16 + gamma * (o.abs_sum[k] + wabs_dx16)) * 1.0001 + 1e-30);
  }
  for (const auto& isa_name : isas_under_test()) {
    set_isa(isa_name);
    for (ops::Precision prec : {ops::Precision::Int, ops::Precision::Float}) {
      const bool is_int = prec == ops::Precision::Int;
      const kernels::Packed pk = kernels::Packed::of(p);
      const bool tiles = is_int && kernels::active().gemm_tile[pk.family][pk.bf16] && s.M >= kernels::active().tile_min_rows;
      const double tile_rel = std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + double(s.K) * std::ldexp(1.0, -23);
      const auto y1 = run(p, x, s.M, prec, 1);
      const auto y2 = run(p, x, s.M, prec, 2);
      for (int64_t i = 0; i < s.M * s.N; ++i) {
        const size_t k = size_t(i);
        INFO(f.name() << (adversarial ? " adversarial" : "") << " isa " << isa_name << (is_int ? " int" : " float")
                      << " M=" << s.M << " N=" << s.N << " K=" << s.K << " at m=" << i / s.N << " n=" << i % s.N
                      << ": got " << y1[k] << ", oracle " << o.y[k]);
        const double bound = tiles    ? tile_rel * o.abs_sum[k]
                             : is_int ? o.wabs_dx[k] + gamma * (o.abs_sum[k] + o.wabs_dx[k])
                                      : gamma * o.abs_sum[k];
        REQUIRE(std::fabs(double(y1[k]) - o.y[k]) <= bound * 1.0001 + 1e-30);
        REQUIRE(std::memcmp(&y1[k], &y2[k], 4) == 0);  // thread count changes nothing
        if (is_int && !tiles) REQUIRE(std::memcmp(&y1[k], &y_scalar_int[k], 4) == 0);
      }
      if (is_int) {
        // NoInt8: the bf16 tiles where they take the GEMM (the Int result here), else
        // the int16 path where the ISA has it (exactly the scalar int16 reference),
        // else exactly the float path.
        const auto y_no8 = run(p, x, s.M, ops::Precision::NoInt8, 2);
        const auto y_float = run(p, x, s.M, ops::Precision::Float, 1);
        const bool i16 = !tiles && kernels::active().gemm_i16[pk.family][pk.bf16] != nullptr;
        const auto& want = tiles ? y1 : i16 ? y_scalar_i16 : y_float;
        INFO(f.name() << " isa " << isa_name << " NoInt8 M=" << s.M << " N=" << s.N << " K=" << s.K
                      << (tiles ? " (tiles)" : i16 ? " (int16 path)" : " (float path)"));
        REQUIRE(std::memcmp(y_no8.data(), want.data(), want.size() * sizeof(float)) == 0);
      }
    }
  }
}

}  // namespace

TEST_CASE("matmul: every ISA, precision and format against the oracle", "[matmul]") {
  uint64_t seed = 1000;
  for (const char* name : kFormats) {
    const quant::Format f = quant::Format::parse(name);
    for (const Shape& s : shapes_for(f, seed++)) check_case(f, s, seed++, false);
  }
}

TEST_CASE("matmul: adversarial weights (zero, saturated, extreme and subnormal scales)", "[matmul]") {
  uint64_t seed = 5000;
  for (const char* name : kFormats) {
    const quant::Format f = quant::Format::parse(name);
    for (const Shape& s : {Shape{1, 33, 4 * f.block_size()}, Shape{7, 47, 8 * f.block_size()},
                           Shape{20, 16, 512}})
      check_case(f, s, seed++, true);
  }
}

TEST_CASE("matmul: the ISA override is honoured and reported", "[matmul][dispatch]") {
  IsaGuard guard;
  for (const auto& name : isas_under_test()) {
    set_isa(name);
    REQUIRE(isa() == name);
  }
  REQUIRE_THROWS_WITH(set_isa("bogus"), Catch::Contains("unknown ISA 'bogus'"));
}

TEST_CASE("matmul: shape and argument errors", "[matmul]") {
  const auto q = random_weights(quant::Format::q4_0(), 8, 64, 1, false);
  const auto p = ops::PackedMatrix::pack(q);
  std::vector<float> x(2 * 64), y(2 * 8), y_bad(2 * 9);
  REQUIRE_THROWS_WITH(ops::matmul(TensorView<const float>(x.data(), {2, 32}), p, TensorView<float>(y.data(), {2, 8})),
                      Catch::Contains("x has 32 columns but W has K = 64"));
  REQUIRE_THROWS_WITH(ops::matmul(TensorView<const float>(x.data(), {2, 64}), p, TensorView<float>(y_bad.data(), {2, 9})),
                      Catch::Contains("y must be [2, 8]"));
  REQUIRE_THROWS_WITH(ops::matmul(TensorView<const float>(x.data(), {128}), p, TensorView<float>(y.data(), {2, 8})),
                      Catch::Contains("x must be 2-D"));
  ops::MatmulOptions o;
  o.n_threads = -1;
  REQUIRE_THROWS_WITH(ops::matmul(TensorView<const float>(x.data(), {2, 64}), p, TensorView<float>(y.data(), {2, 8}), o),
                      Catch::Contains("n_threads"));
  // Absurd thread counts are refused, not handed to OpenMP (which crashes creating them).
  o.n_threads = kMaxThreads + 1;
  REQUIRE_THROWS_WITH(ops::matmul(TensorView<const float>(x.data(), {2, 64}), p, TensorView<float>(y.data(), {2, 8}), o),
                      Catch::Contains("n_threads must be in [0, 1024]"));
  REQUIRE_THROWS_WITH(set_num_threads(kMaxThreads + 1), Catch::Contains("[1, 1024]"));
  REQUIRE_THROWS_WITH(set_num_threads(0), Catch::Contains("[1, 1024]"));
}

// Float weights (f32, f16, bf16): fp32 products (Eigen), within (K + 2) 2^-24 sum|w x|
// of the exact product of the weights as given; on bf16 tiles (amx: f16/bf16 weights
// unless Precision::Float, f32 ones under NoInt8, M >= tile_min_rows) within the
// tiles' bound instead. Every ISA, precision, 1 and 2 threads, K with a tail.
// (avx2, avx512: their gemm_dense, kernels/<isa>/gemm_dense.cpp; elsewhere Eigen.)
TEST_CASE("matmul: float, fp16 and bf16 weights, fp32 or on bf16 tiles by precision", "[matmul]") {
  const int64_t N = 37;
  for (const auto& isa_name : isas_under_test()) {
    set_isa(isa_name);
    const kernels::KernelTable& kt = kernels::active();
    // M: the fp32 kernels' 4-, 2- and 1-row tiles and their 64-row blocks; K: their
    // vector steps with a tail and their 512-k chunks.
    for (const int64_t M : {1, 3, 5, 40, 70})
      for (const int64_t K : {96, 100, 1100}) {
        const auto x = random_activations(M, K, uint64_t(3 + M + K));
        const auto w = random_activations(N, K, uint64_t(4 + M + K));
        std::vector<f16> wh(w.size());
        std::vector<bf16> wb(w.size());
        std::vector<float> wr_h(w.size()), wr_b(w.size());
        for (size_t i = 0; i < w.size(); ++i) {
          wh[i] = f16::from_float(w[i]);
          wb[i] = bf16::from_float(w[i]);
          wr_h[i] = wh[i].to_float();
          wr_b[i] = wb[i].to_float();
        }
        const Oracle o[3] = {oracle(w, x, M, N, K), oracle(wr_h, x, M, N, K), oracle(wr_b, x, M, N, K)};
        for (const auto prec : {ops::Precision::Auto, ops::Precision::Float, ops::Precision::NoInt8})
          for (const int nt : {1, 2}) {
            ops::MatmulOptions opts;
            opts.precision = prec;
            opts.n_threads = nt;
            for (int type = 0; type < kernels::kDenseTypes; ++type) {
              std::vector<float> y(size_t(M * N), -7.0f);
              const TensorView<const float> xv(x.data(), {M, K});
              const TensorView<float> yv(y.data(), {M, N});
              if (type == kernels::kDenseF32) ops::matmul(xv, TensorView<const float>(w.data(), {N, K}), yv, opts);
              else if (type == kernels::kDenseF16) ops::matmul(xv, TensorView<const f16>(wh.data(), {N, K}), yv, opts);
              else ops::matmul(xv, TensorView<const bf16>(wb.data(), {N, K}), yv, opts);
              const bool allowed = prec == ops::Precision::NoInt8 ||
                                   (type != kernels::kDenseF32 && prec != ops::Precision::Float);
              const bool tiles = kt.gemm_tile_dense[type] && allowed && M >= kt.tile_min_rows;
              const double rel = tiles ? std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + double(K) * std::ldexp(1.0, -23)
                                       : double(K + 2) * std::ldexp(1.0, -24);
              INFO(isa_name << " type " << type << " M=" << M << " K=" << K << " precision " << int(prec)
                            << " threads " << nt << (tiles ? " (bf16 tiles)" : " (fp32)"));
              for (size_t i = 0; i < y.size(); ++i) REQUIRE(std::fabs(y[i] - o[type].y[i]) <= rel * o[type].abs_sum[i]);
            }
          }
      }
  }
}

TEST_CASE("matmul: float weights refuse act_scale", "[matmul]") {
  std::vector<float> x(2 * 64, 1.0f), w(8 * 64, 1.0f), y(2 * 8), scale(64, 2.0f);
  ops::MatmulOptions o;
  o.act_scale = scale.data();
  REQUIRE_THROWS_WITH(ops::matmul(TensorView<const float>(x.data(), {2, 64}), TensorView<const float>(w.data(), {8, 64}),
                                  TensorView<float>(y.data(), {2, 8}), o),
                      Catch::Contains("act_scale (smoothing) is for quantized weights"));
}
