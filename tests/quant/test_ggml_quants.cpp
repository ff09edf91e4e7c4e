// q5_0, q4_K and q6_K quantizers (include/halfbyte/quant/ggml_quants.hpp).
//
// The bytes are decoded by src/io/ggml_dequant.cpp (the loader's decoder, written
// separately from ggml's block layouts), so a layout mistake in the quantizer shows
// up as a mismatch; the error is compared with straightforward round-to-nearest
// versions of each format written here (the k-quant "RTN" a reader of the layout
// would write first), and with q4_0 at the same 4.5 bits/weight.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "halfbyte/core/half.hpp"
#include "halfbyte/quant/ggml_quants.hpp"
#include "halfbyte/quant/quantize.hpp"
#include "io/ggml_dequant.hpp"
#include "ggml_quant_util.hpp"
#include "test_util.hpp"

namespace hq = halfbyte::quant;
namespace gq = halfbyte::quant::ggml;
using halfbyte::io::GgmlType;

using halfbyte::test::datasets;
using halfbyte::test::f16r;
using halfbyte::test::kQ4K;
using halfbyte::test::round_trip;

namespace {

double rmse(const std::vector<float>& a, const std::vector<float>& b, const float* w = nullptr) {
  return std::sqrt(halfbyte::test::sse(a.data(), b.data(), a.size(), w) / double(a.size()));
}

// Round-to-nearest q4_K: each sub-block's [min(x, 0), max] mapped onto 0..15, the
// eight scales and mins rounded to 6 bits of max/63, codes rounded for them.
std::vector<float> rtn_q4k(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t o = 0; o < x.size(); o += 256) {
    float a[8], m[8], amax = 0, mmax = 0;
    for (int s = 0; s < 8; ++s) {
      const float* xs = &x[o + 32 * s];
      const float mn = std::min(0.0f, *std::min_element(xs, xs + 32)), mx = *std::max_element(xs, xs + 32);
      a[s] = (mx - mn) / 15.0f;
      m[s] = -mn;
      amax = std::max(amax, a[s]);
      mmax = std::max(mmax, m[s]);
    }
    const float d = f16r(amax / 63.0f), dmin = f16r(mmax / 63.0f);
    for (int s = 0; s < 8; ++s) {
      const int sc = d > 0 ? std::min(63, int(std::lround(a[s] / d))) : 0;
      const int mn = dmin > 0 ? std::min(63, int(std::lround(m[s] / dmin))) : 0;
      const float ds = d * float(sc), ms = dmin * float(mn);
      for (int l = 0; l < 32; ++l) {
        const float v = x[o + 32 * s + l];
        const int q = ds > 0 ? std::clamp(int(std::lround((v + ms) / ds)), 0, 15) : 0;
        y[o + 32 * s + l] = ds * float(q) - ms;
      }
    }
  }
  return y;
}

// Round-to-nearest q6_K: sub-block scale amax/31 (signed), int8 scales of max/127.
std::vector<float> rtn_q6k(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t o = 0; o < x.size(); o += 256) {
    float a[16], amax = 0;
    for (int s = 0; s < 16; ++s) {
      float vm = 0;
      for (int l = 0; l < 16; ++l) vm = std::max(vm, std::fabs(x[o + 16 * s + l]));
      a[s] = vm / 31.0f;
      amax = std::max(amax, a[s]);
    }
    const float d = f16r(amax / 127.0f);
    for (int s = 0; s < 16; ++s) {
      const int sc = d > 0 ? std::min(127, int(std::lround(a[s] / d))) : 0;  // int8 scales
      const float ds = d * float(sc);
      for (int l = 0; l < 16; ++l) {
        const float v = x[o + 16 * s + l];
        const int q = ds > 0 ? std::clamp(int(std::lround(v / ds)), -32, 31) : 0;
        y[o + 16 * s + l] = ds * float(q);
      }
    }
  }
  return y;
}

std::vector<float> q4_0_auto(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  std::vector<uint8_t> buf(x.size() / 32 * 18);
  hq::quantize_row(hq::Format::q4_0(), x.data(), int64_t(x.size()), buf.data());
  hq::dequantize_row(hq::Format::q4_0(), buf.data(), int64_t(x.size()), y.data());
  return y;
}

const auto kQ6K = [](const float* x, const float* w, uint8_t* d) { gq::quantize_block_q6_k(x, w, d); };
const auto kQ50 = [](const float* x, const float* w, uint8_t* d) { gq::quantize_block_q5_0(x, w, d); };

}  // namespace

TEST_CASE("q4_K: decoded by the loader, lower error than round-to-nearest and than q4_0", "[quant][kquant]") {
  const size_t n = 256 * 64;
  for (const auto& [name, x] : datasets(n)) {
    INFO(name);
    const auto y = round_trip(GgmlType::Q4_K, 256, gq::kQ4KBytes, x, kQ4K);
    // Our own decoder reads the same bytes the same way.
    std::vector<uint8_t> blk(gq::kQ4KBytes);
    std::vector<float> y2(256);
    gq::quantize_block_q4_k(x.data(), nullptr, blk.data());
    gq::dequantize_block_q4_k(blk.data(), y2.data());
    for (int j = 0; j < 256; ++j) REQUIRE(y2[size_t(j)] == y[size_t(j)]);
    const double e = rmse(x, y), e_rtn = rmse(x, rtn_q4k(x));
    CAPTURE(e, e_rtn);
    CHECK(e < 0.97 * e_rtn);
    if (std::string(name) == "gaussian") {
      // 4.5 bits/weight like q4_0, but a min per 32 and finer scales: clearly better.
      const double e_q40 = rmse(x, q4_0_auto(x));
      CAPTURE(e_q40);
      CHECK(e < 0.95 * e_q40);
      CHECK(e < 0.08);  // a 4-bit uniform grid over ~4.1 sigma: step/sqrt(12) = 0.079
    }
  }
}

TEST_CASE("q6_K: decoded by the loader, lower error than round-to-nearest", "[quant][kquant]") {
  const size_t n = 256 * 64;
  for (const auto& [name, x] : datasets(n)) {
    INFO(name);
    const auto y = round_trip(GgmlType::Q6_K, 256, gq::kQ6KBytes, x, kQ6K);
    std::vector<uint8_t> blk(gq::kQ6KBytes);
    std::vector<float> y2(256);
    gq::quantize_block_q6_k(x.data(), nullptr, blk.data());
    gq::dequantize_block_q6_k(blk.data(), y2.data());
    for (int j = 0; j < 256; ++j) REQUIRE(y2[size_t(j)] == y[size_t(j)]);
    const double e = rmse(x, y), e_rtn = rmse(x, rtn_q6k(x));
    CAPTURE(e, e_rtn);
    CHECK(e < 0.97 * e_rtn);
  }
}

TEST_CASE("q5_0: decoded by the loader, never worse than ggml's round-to-nearest", "[quant][kquant]") {
  const size_t n = 32 * 512;
  for (const auto& [name, x] : datasets(n)) {
    INFO(name);
    const auto y = round_trip(GgmlType::Q5_0, 32, gq::kQ5_0Bytes, x, kQ50);
    // ggml's reference q5_0: the extreme value maps to -16.
    std::vector<float> r(n);
    for (size_t o = 0; o < n; o += 32) {
      float amax = 0, vmax = 0;
      for (int j = 0; j < 32; ++j)
        if (std::fabs(x[o + size_t(j)]) > amax) {
          amax = std::fabs(x[o + size_t(j)]);
          vmax = x[o + size_t(j)];
        }
      const float d = vmax / -16.0f, id = d != 0 ? 1.0f / d : 0.0f, ds = f16r(d);
      for (int j = 0; j < 32; ++j) {
        const int q = std::min(31, int(int8_t(x[o + size_t(j)] * id + 16.5f)));
        r[o + size_t(j)] = ds * float(q - 16);
      }
    }
    for (size_t o = 0; o < n; o += 32) {  // per block, as the search keeps RTN as a candidate
      double e = 0, er = 0;
      for (size_t j = o; j < o + 32; ++j) {
        e += (double(x[j]) - y[j]) * (double(x[j]) - y[j]);
        er += (double(x[j]) - r[j]) * (double(x[j]) - r[j]);
      }
      REQUIRE(e <= er * (1 + 1e-9) + 1e-30);
    }
    CHECK(rmse(x, y) < rmse(x, r));
  }
}

TEST_CASE("k-quants: importance weights lower the weighted error", "[quant][kquant]") {
  const size_t n = 256 * 32;
  const auto x = halfbyte::test::gaussian(n, 7);
  std::vector<float> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = (i % 7 == 0) ? 20.0f : 0.2f;  // a few columns matter much more
  for (int k = 0; k < 2; ++k) {
    const GgmlType t = k == 0 ? GgmlType::Q4_K : GgmlType::Q6_K;
    const int bytes = k == 0 ? gq::kQ4KBytes : gq::kQ6KBytes;
    INFO(k);
    const auto y_plain = k == 0 ? round_trip(t, 256, bytes, x, kQ4K) : round_trip(t, 256, bytes, x, kQ6K);
    const auto y_w = k == 0 ? round_trip(t, 256, bytes, x, kQ4K, w.data()) : round_trip(t, 256, bytes, x, kQ6K, w.data());
    CHECK(rmse(x, y_w, w.data()) < 0.9 * rmse(x, y_plain, w.data()));
  }
}

TEST_CASE("k-quants: zero, constant and non-finite blocks", "[quant][kquant]") {
  std::vector<uint8_t> b4(gq::kQ4KBytes), b6(gq::kQ6KBytes);
  std::vector<float> y(256);
  const std::vector<float> zero(256, 0.0f);
  gq::quantize_block_q4_k(zero.data(), nullptr, b4.data());
  gq::dequantize_block_q4_k(b4.data(), y.data());
  for (float v : y) REQUIRE(v == 0.0f);
  gq::quantize_block_q6_k(zero.data(), nullptr, b6.data());
  gq::dequantize_block_q6_k(b6.data(), y.data());
  for (float v : y) REQUIRE(v == 0.0f);

  for (float c : {1.5f, -0.75f}) {  // constant blocks come back within fp16 rounding
    const std::vector<float> k(256, c);
    gq::quantize_block_q4_k(k.data(), nullptr, b4.data());
    gq::dequantize_block_q4_k(b4.data(), y.data());
    for (float v : y) REQUIRE(v == Approx(c).epsilon(2e-3));
    gq::quantize_block_q6_k(k.data(), nullptr, b6.data());
    gq::dequantize_block_q6_k(b6.data(), y.data());
    for (float v : y) REQUIRE(v == Approx(c).epsilon(2e-3));
  }

  std::vector<float> bad(256, 1.0f);
  bad[37] = std::nanf("");
  REQUIRE_THROWS_WITH(gq::quantize_block_q4_k(bad.data(), nullptr, b4.data()), Catch::Contains("q4_K") && Catch::Contains("column 37"));
  REQUIRE_THROWS_WITH(gq::quantize_block_q6_k(bad.data(), nullptr, b6.data()), Catch::Contains("not finite"));
  std::vector<float> huge(256, 0.0f);
  huge[3] = 1e30f;
  REQUIRE_THROWS_WITH(gq::quantize_block_q4_k(huge.data(), nullptr, b4.data()), Catch::Contains("overflows"));
}
