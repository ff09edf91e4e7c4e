// Shared pieces of the kernel tests: the ISAs to sweep (with a printed line for
// each one skipped), weight generators including adversarial blocks, and the
// double-precision oracle y = x . dequant(W)^T.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "halfbyte/halfbyte.hpp"

namespace halfbyte::test {

// ISAs this build has and this CPU runs. Prints once per process which are skipped.
inline std::vector<std::string> isas_under_test() {
  static const std::vector<std::string> isas = [] {
    std::vector<std::string> run;
    const auto avail = available_isas();
    for (const auto& name : compiled_isas()) {
      if (std::find(avail.begin(), avail.end(), name) != avail.end()) {
        run.push_back(name);
      } else if (name == "amx_emulated") {  // (its tile kernels: the [amx] tests, on any AVX-512 CPU)
        std::printf("kernel tests: skipped ISA 'amx_emulated': offered only with HALFBYTE_AMX_EMULATION=1\n");
      } else {
        std::printf("kernel tests: skipped ISA '%s': not supported by this CPU\n", name.c_str());
      }
    }
    std::string list;
    for (const auto& n : run) list += " " + n;
    std::printf("kernel tests: running ISAs:%s\n", list.c_str());
    return run;
  }();
  return isas;
}

// Restores the ISA in use at scope exit.
struct IsaGuard {
  std::string saved = isa();
  ~IsaGuard() { set_isa(saved); }
};

// A quantized matrix of random N(0, 1) weights, or with adversarial blocks:
// all-zero codes, saturated codes, fp16 scales at the extremes (65504, the
// smallest normal, subnormals, zero) and, for q8_0, the code -128.
inline quant::QMatrix random_weights(const quant::Format& f, int64_t N, int64_t K, uint64_t seed,
                                     bool adversarial) {
  std::mt19937_64 rng{seed};
  if (!adversarial) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> w(size_t(N * K));
    for (float& v : w) v = nd(rng);
    quant::QuantizeOptions o;
    o.method = quant::Method::RTN;
    return quant::quantize(TensorView<const float>(w.data(), {N, K}), f, o);
  }
  quant::QMatrix q(f, N, K);
  for (size_t i = 0; i < q.nbytes(); ++i) q.data()[i] = uint8_t(rng());
  const bool bf = f.kind == quant::Kind::Int4 && f.scale == quant::ScaleType::BF16;
  const uint16_t f16_scales[] = {0x3C00, 0x7BFF, 0x0400, 0x0001, 0x03FF, 0x0000, 0x8400, 0xB555, 0x2E66};
  const uint16_t bf16_scales[] = {0x3F80, 0x6F00, 0x0080, 0x0001, 0x0000, 0xBF80, 0x3C23};
  const size_t codes_at = f.has_min() ? 4 : 2, code_bytes = f.block_bytes() - codes_at;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t b = 0; b < K / f.block_size(); ++b) {
      uint8_t* blk = q.row(n) + size_t(b) * f.block_bytes();
      const uint16_t sc = bf ? bf16_scales[rng() % std::size(bf16_scales)]
                             : f16_scales[rng() % std::size(f16_scales)];
      std::memcpy(blk, &sc, 2);
      if (f.has_min()) {
        const uint16_t m = bf ? bf16_scales[rng() % std::size(bf16_scales)]
                              : f16_scales[rng() % std::size(f16_scales)];
        std::memcpy(blk + 2, &m, 2);
      }
      switch (rng() % 4) {
        case 0: std::memset(blk + codes_at, 0x00, code_bytes); break;  // all-zero codes (q8: 0; 4-bit: -8)
        case 1: std::memset(blk + codes_at, f.is_4bit() ? 0xFF : 0x80, code_bytes); break;  // 15 / -128
        default: break;  // random codes
      }
    }
  }
  return q;
}

inline std::vector<float> random_activations(int64_t M, int64_t K, uint64_t seed) {
  std::mt19937_64 rng{seed};
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(size_t(M * K));
  for (float& v : x) v = nd(rng);
  if (M > 2) std::fill(x.begin() + K, x.begin() + 2 * K, 0.0f);  // an all-zero row
  for (int64_t k = 0; k < K; k += 7) x[size_t(k)] *= 30.0f;     // outliers in row 0
  return x;
}

// Dequantized W [N, K] in float (exact: the reference dequantizer).
inline std::vector<float> dequantized(const quant::QMatrix& q) {
  std::vector<float> w(size_t(q.rows() * q.cols()));
  quant::dequantize(q, TensorView<float>(w.data(), {q.rows(), q.cols()}));
  return w;
}

// Oracle value and the sum of |terms| (for error bounds), in double.
struct Oracle {
  std::vector<double> y, abs_sum, wabs_dx;  // [M][N]
};

// wabs_dx[m][n] = sum_k |w[n][k]| * d_x(m, k) / 2: the worst effect of int8
// activation quantization (d_x = the block's amax / 127).
inline Oracle oracle(const std::vector<float>& w, const std::vector<float>& x, int64_t M, int64_t N,
                     int64_t K) {
  Oracle o;
  o.y.assign(size_t(M * N), 0.0);
  o.abs_sum.assign(size_t(M * N), 0.0);
  o.wabs_dx.assign(size_t(M * N), 0.0);
  std::vector<double> half_step(static_cast<size_t>(K));
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x.data() + m * K;
    for (int64_t b = 0; b < K / 32; ++b) {
      double amax = 0.0;
      for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(double(xr[b * 32 + k])));
      for (int k = 0; k < 32; ++k) half_step[size_t(b * 32 + k)] = amax / 127.0 / 2.0;
    }
    for (int64_t n = 0; n < N; ++n) {
      const float* wr = w.data() + n * K;
      double s = 0.0, a = 0.0, e = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        s += double(wr[k]) * xr[k];
        a += std::fabs(double(wr[k]) * xr[k]);
        e += std::fabs(double(wr[k])) * half_step[size_t(k)];
      }
      o.y[size_t(m * N + n)] = s;
      o.abs_sum[size_t(m * N + n)] = a;
      o.wabs_dx[size_t(m * N + n)] = e;
    }
  }
  return o;
}

}  // namespace halfbyte::test
