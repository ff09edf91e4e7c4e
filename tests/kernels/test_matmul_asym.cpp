// The asymmetric int8 path (ops::Precision::Int8Asym) and MatmulOptions::act_scale.
//
// Activations: v = x * act_scale, per 32-block 256 levels from an offset c to the
// block's max, v^ = d q + c with q in [0, 255] (kernels::QuantizeActAsymFn), so that
// |v^ - v| <= d / 2 with d = (max - c) / 255; c the row's min in every block where
// that widens no block's step by more than kernels::kAsymRowSpan, else each block's
// min (the test data has rows of both kinds: GELU outputs, and normal ones with outliers).
// GEMM: against the double-precision product of the dequantized weights and v,
//   |y - y*| <= sum_k |w_k| d_k / 2
//               + gamma (sum_k |w_k v_k| + sum_k |w_k| d_k / 2 + 2 |c| sum_k |w_k|),
//   gamma = (2 K/32 + 34) u, u = 2^-24 (an fp32 FMA per block for the integer term, one
//   per block for the weights' sum and one for the offset times it, each bounded by
//   the terms above);
// and every ISA that has the kernel equals scalar::gemm_int_asym bit for bit, for any
// thread count. Where an ISA has no asymmetric kernel (or the format is affine),
// Int8Asym is exactly Int. act_scale on the other paths: exactly the same call on a
// scaled copy of x.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "kernel_table.hpp"
#include "kernel_test_util.hpp"

using namespace halfbyte;
using namespace halfbyte::test;

namespace {

struct AsymAct {
  std::vector<int8_t> qs;
  std::vector<kernels::ActBlock> meta;
};

AsymAct quantize_rows(kernels::QuantizeActAsymFn fn, const std::vector<float>& x, int64_t M, int64_t K,
                      const float* scale) {
  AsymAct a{std::vector<int8_t>(size_t(M * K)), std::vector<kernels::ActBlock>(size_t(M * K / 32))};
  for (int64_t m = 0; m < M; ++m) fn(x.data() + m * K, K, scale, a.qs.data() + m * K, a.meta.data() + m * K / 32);
  return a;
}

std::vector<float> run(const ops::PackedMatrix& p, const std::vector<float>& x, int64_t M, ops::Precision prec,
                       int threads, const float* scale) {
  std::vector<float> y(size_t(M * p.rows()), -12345.0f);
  ops::MatmulOptions o;
  o.precision = prec;
  o.n_threads = threads;
  o.act_scale = scale;
  ops::matmul(TensorView<const float>(x.data(), {M, p.cols()}), p, TensorView<float>(y.data(), {M, p.rows()}), o);
  return y;
}

std::vector<float> random_scale(int64_t K, uint64_t seed) {
  std::mt19937_64 rng{seed};
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  std::vector<float> s(static_cast<size_t>(K));
  for (float& v : s) v = std::exp2(ud(rng));  // 1/4 .. 4
  return s;
}

// Rows of both kinds: normal values (with random_activations' outliers and zero row)
// and GELU outputs (bounded below: their rows share one offset).
std::vector<float> asym_activations(int64_t M, int64_t K, uint64_t seed) {
  std::vector<float> x = random_activations(M, K, seed);
  for (int64_t m = 0; m < M; ++m)
    if ((m / 4) % 2 == 1 || m % 5 == 3)
      for (int64_t k = 0; k < K; ++k) {
        float& v = x[size_t(m * K + k)];
        v = float(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
      }
  return x;
}

int g_rows_one_offset = 0, g_rows_block_offsets = 0;

void check_quantization(const std::vector<float>& x, int64_t M, int64_t K, const float* scale, const AsymAct& a) {
  const int64_t nb = K / 32;
  const auto value = [&](int64_t m, int64_t k) { return x[size_t(m * K + k)] * (scale ? scale[k] : 1.0f); };
  for (int64_t m = 0; m < M; ++m) {
    // The row's kind, from the same fp32 arithmetic as the contract's.
    std::vector<float> lo(static_cast<size_t>(nb)), hi(static_cast<size_t>(nb));
    float row_lo = INFINITY;
    for (int64_t b = 0; b < nb; ++b) {
      lo[size_t(b)] = hi[size_t(b)] = value(m, b * 32);
      for (int k = 1; k < 32; ++k) {
        lo[size_t(b)] = std::min(lo[size_t(b)], value(m, b * 32 + k));
        hi[size_t(b)] = std::max(hi[size_t(b)], value(m, b * 32 + k));
      }
      row_lo = std::min(row_lo, lo[size_t(b)]);
    }
    bool one = true;
    for (int64_t b = 0; b < nb; ++b)
      one = one && hi[size_t(b)] - row_lo <= kernels::kAsymRowSpan * (hi[size_t(b)] - lo[size_t(b)]);
    ++(one ? g_rows_one_offset : g_rows_block_offsets);
    for (int64_t b = 0; b < nb; ++b) {
      const kernels::ActBlock& mb = a.meta[size_t(m * nb + b)];
      INFO("row " << m << " block " << b);
      REQUIRE(mb.s == (one ? 1 : 0));
      REQUIRE(mb.c == (one ? row_lo : lo[size_t(b)]));
      for (int k = 0; k < 32; ++k) {
        const int64_t i = m * K + b * 32 + k;
        const double v = double(x[size_t(i)] * (scale ? scale[b * 32 + k] : 1.0f));
        const int q = uint8_t(a.qs[size_t(i)]);  // unsigned codes
        const double vq = double(mb.d) * q + mb.c;
        INFO("row " << m << " block " << b << " k " << k << ": v " << v << " dequantized " << vq << " d " << mb.d);
        REQUIRE(std::fabs(vq - v) <= mb.d * 0.5 * 1.0001 + std::fabs(v) * 1e-6 + 1e-30);
      }
    }
  }
}

void check_case(const quant::Format& f, int64_t M, int64_t N, int64_t K, uint64_t seed, bool scaled) {
  const quant::QMatrix q = random_weights(f, N, K, seed, false);
  const auto x = asym_activations(M, K, seed + 1);
  const auto scale_v = random_scale(K, seed + 2);
  const float* scale = scaled ? scale_v.data() : nullptr;
  const auto w = dequantized(q);
  const auto p = ops::PackedMatrix::pack(q);
  const kernels::Packed pk = kernels::Packed::of(p);
  const auto ref_gemm = kernels::scalar::gemm_int_asym(pk.family);
  INFO(f.name() << " M=" << M << " N=" << N << " K=" << K << (scaled ? " act_scale" : ""));

  // The reference: scalar quantization, scalar GEMM, checked against the oracle.
  const AsymAct ref = quantize_rows(kernels::scalar::quantize_act_asym, x, M, K, scale);
  check_quantization(x, M, K, scale, ref);
  std::vector<float> y_ref(size_t(M * N), -12345.0f);
  if (ref_gemm) {
    const kernels::GemmTask t{0, (N + 15) / 16, 0, M, y_ref.data(), N};
    ref_gemm(pk, kernels::ActQ8{ref.qs.data(), ref.meta.data(), K}, t);
    const double gamma = (2.0 * double(K) / 32 + 34) * std::ldexp(1.0, -24);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double y = 0, wv = 0, wd = 0, wc = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double wk = w[size_t(n * K + k)];
          const double v = double(x[size_t(m * K + k)] * (scale ? scale[k] : 1.0f));
          const kernels::ActBlock& mb = ref.meta[size_t(m * K / 32 + k / 32)];
          y += wk * v;
          wv += std::fabs(wk * v);
          wd += std::fabs(wk) * mb.d / 2;
          wc += 2 * std::fabs(wk) * std::fabs(mb.c);
        }
        const double got = y_ref[size_t(m * N + n)];
        INFO("scalar reference at m=" << m << " n=" << n << ": got " << got << ", oracle " << y);
        REQUIRE(std::fabs(got - y) <= (wd + gamma * (wv + wd + wc)) * 1.0001 + 1e-30);
      }
  }

  IsaGuard guard;
  for (const auto& isa_name : isas_under_test()) {
    set_isa(isa_name);
    INFO("isa " << isa_name);
    const kernels::KernelTable& kt = kernels::active();
    const bool has = kt.quantize_act_asym && kt.gemm_int_asym[pk.family][pk.bf16];
    if (kt.quantize_act_asym) {
      const AsymAct got = quantize_rows(kt.quantize_act_asym, x, M, K, scale);
      REQUIRE(std::memcmp(got.qs.data(), ref.qs.data(), got.qs.size()) == 0);
      for (size_t i = 0; i < got.meta.size(); ++i) {
        REQUIRE(std::memcmp(&got.meta[i].d, &ref.meta[i].d, 4) == 0);
        REQUIRE(got.meta[i].s == ref.meta[i].s);
        REQUIRE(std::memcmp(&got.meta[i].c, &ref.meta[i].c, 4) == 0);
      }
    }
    const bool tiles = kt.gemm_tile[pk.family][pk.bf16] && M >= kt.tile_min_rows;
    const auto y1 = run(p, x, M, ops::Precision::Int8Asym, 1, scale);
    const auto y2 = run(p, x, M, ops::Precision::Int8Asym, 2, scale);
    REQUIRE(std::memcmp(y1.data(), y2.data(), y1.size() * 4) == 0);
    // Elsewhere: Int (or the tiles) on x * act_scale, computed the way matmul's copy is.
    std::vector<float> xs(x);
    if (scale)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) xs[size_t(m * K + k)] = x[size_t(m * K + k)] * scale[k];
    if (has && !tiles) {
      REQUIRE(std::memcmp(y1.data(), y_ref.data(), y1.size() * 4) == 0);
    } else {
      const auto want = run(p, xs, M, ops::Precision::Int, 1, nullptr);
      REQUIRE(std::memcmp(y1.data(), want.data(), y1.size() * 4) == 0);
    }
    if (scale) {  // the other precisions with act_scale: the same call on the scaled copy
      for (ops::Precision prec : {ops::Precision::Int, ops::Precision::Float, ops::Precision::NoInt8}) {
        const auto got = run(p, x, M, prec, 2, scale);
        const auto want = run(p, xs, M, prec, 2, nullptr);
        REQUIRE(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
      }
    }
  }
}

}  // namespace

TEST_CASE("matmul: asymmetric int8 activations and act_scale against the oracle", "[matmul][asym]") {
  const struct {
    int64_t M, N, K;
  } shapes[] = {{1, 17, 64},  {2, 16, 128}, {3, 33, 96},   {4, 48, 384},  {5, 300, 96}, {7, 1, 32},
                {9, 100, 256}, {17, 117, 192}, {35, 33, 96}, {37, 48, 64}, {6, 40, 672}, {64, 257, 1536}, {2, 17, 8320}};
  uint64_t seed = 7000;
  for (const char* name : {"q8_0", "q4_0", "int4_g64", "q4_1"}) {
    const quant::Format f = quant::Format::parse(name);
    for (const auto& s : shapes) {
      const int64_t K = (s.K + f.block_size() - 1) / f.block_size() * f.block_size();
      for (bool scaled : {false, true}) check_case(f, s.M, s.N, K, seed += 3, scaled);
    }
  }
  std::printf("asymmetric activations: %d rows with one offset, %d with an offset per block\n", g_rows_one_offset,
              g_rows_block_offsets);
  REQUIRE(g_rows_one_offset > 100);  // both kinds ran, in tiles of one kind and mixed
  REQUIRE(g_rows_block_offsets > 100);
}

TEST_CASE("matmul: asymmetric activations at the row's minimum are exact", "[matmul][asym]") {
  // Row 0: a block of 0.75 then a block of -2.5 (the row's minimum: exact); row 1: constant.
  std::vector<float> x(128, 0.75f);
  for (int k = 32; k < 64; ++k) x[size_t(k)] = -2.5f;
  for (int k = 64; k < 128; ++k) x[size_t(k)] = 3.25f;
  std::vector<int8_t> qs(128);
  kernels::ActBlock meta[4];
  IsaGuard guard;
  for (const auto& isa_name : isas_under_test()) {
    set_isa(isa_name);
    const auto fn = kernels::active().quantize_act_asym ? kernels::active().quantize_act_asym
                                                        : kernels::scalar::quantize_act_asym;
    fn(x.data(), 64, nullptr, qs.data(), meta);
    fn(x.data() + 64, 64, nullptr, qs.data() + 64, meta + 2);
    const auto dequantized = [&](int k) { return meta[k / 32].d * float(uint8_t(qs[size_t(k)])) + meta[k / 32].c; };
    for (int k = 32; k < 128; ++k) REQUIRE(dequantized(k) == x[size_t(k)]);
    for (int k = 0; k < 32; ++k) REQUIRE(std::fabs(dequantized(k) - 0.75f) <= 1e-6f);
  }
}

// MatmulOptions::bias and ::activation: y = gelu(x W^T + bias) equals the product
// followed by the active ISA's GELU pass (or the bias added), bit for bit, on every
// path: the asymmetric int8 kernel applies them in its tiles (avx512), the others
// after the product. Shapes with a partial last row group.
TEST_CASE("matmul: bias and GELU after the product, fused or not", "[matmul][asym]") {
  const struct {
    int64_t M, N, K;
  } shapes[] = {{1, 17, 64}, {3, 33, 96}, {9, 100, 256}, {37, 48, 64}, {70, 257, 384}};
  uint64_t seed = 9100;
  IsaGuard guard;
  for (const auto& isa_name : isas_under_test()) {
    set_isa(isa_name);
    for (const char* name : {"q8_0", "q4_0", "q4_1"})
      for (const auto& s : shapes) {
        const quant::Format f = quant::Format::parse(name);
        const quant::QMatrix q = random_weights(f, s.N, s.K, seed++, false);
        const auto p = ops::PackedMatrix::pack(q);
        const auto x = random_activations(s.M, s.K, seed++);
        std::vector<float> bias(static_cast<size_t>(s.N));
        std::mt19937_64 rng{seed++};
        std::normal_distribution<float> nd(0.0f, 2.0f);
        for (float& b : bias) b = nd(rng);
        for (ops::Precision prec : {ops::Precision::Int8Asym, ops::Precision::Int, ops::Precision::Float,
                                    ops::Precision::NoInt8})
          for (ops::Activation act : {ops::Activation::None, ops::Activation::Gelu})
            for (int threads : {1, 2}) {
              INFO(isa_name << " " << name << " M=" << s.M << " N=" << s.N << " K=" << s.K << " precision "
                            << int(prec) << (act == ops::Activation::Gelu ? " gelu" : "") << " threads " << threads);
              auto want = run(p, x, s.M, prec, threads, nullptr);
              for (int64_t m = 0; m < s.M; ++m) {
                float* r = want.data() + m * s.N;
                if (act == ops::Activation::Gelu)
                  kernels::active().gelu(r, bias.data(), s.N);
                else
                  for (int64_t n = 0; n < s.N; ++n) r[n] += bias[size_t(n)];
              }
              std::vector<float> got(want.size(), -12345.0f);
              ops::MatmulOptions o;
              o.precision = prec;
              o.n_threads = threads;
              o.bias = bias.data();
              o.activation = act;
              ops::matmul(TensorView<const float>(x.data(), {s.M, s.K}), p,
                          TensorView<float>(got.data(), {s.M, s.N}), o);
              REQUIRE(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
            }
      }
  }
  // The float overloads: the same pass.
  const int64_t M = 5, N = 19, K = 40;
  const auto x = random_activations(M, K, 1);
  const auto wf = random_activations(N, K, 2);
  std::vector<float> bias(static_cast<size_t>(N), 0.25f), want(size_t(M * N)), got(size_t(M * N));
  ops::matmul(TensorView<const float>(x.data(), {M, K}), TensorView<const float>(wf.data(), {N, K}),
              TensorView<float>(want.data(), {M, N}));
  for (int64_t m = 0; m < M; ++m) kernels::active().gelu(want.data() + m * N, bias.data(), N);
  ops::MatmulOptions o;
  o.bias = bias.data();
  o.activation = ops::Activation::Gelu;
  ops::matmul(TensorView<const float>(x.data(), {M, K}), TensorView<const float>(wf.data(), {N, K}),
              TensorView<float>(got.data(), {M, N}), o);
  REQUIRE(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
}
