// Reference quantizers: round-trip error bounds per format and distribution, the
// search never worse than round-to-nearest, importance weighting, bad input.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "halfbyte/quant/qmatrix.hpp"
#include "test_util.hpp"

using namespace halfbyte;
using namespace halfbyte::quant;
namespace t = halfbyte::test;

namespace {

const char* kFormats[] = {"q4_0",      "q4_1",      "q8_0",       "int4_g32",      "int4_g64",
                          "int4_g128", "int4a_g32", "int4a_g128", "int4_g64_bf16", "int4a_g64_bf16"};

struct Dist {
  std::string name;
  std::vector<float> values;
};

std::vector<Dist> distributions(size_t n) {
  std::vector<Dist> d;
  d.push_back({"gaussian", t::gaussian(n, 1)});
  d.push_back({"gaussian sigma 0.02", t::gaussian(n, 2, 0.02f)});
  d.push_back({"uniform [-1, 3]", t::uniform(n, 3, -1.0f, 3.0f)});
  d.push_back({"student-t(2)", t::heavy_tailed(n, 4)});
  d.push_back({"all zero", std::vector<float>(n, 0.0f)});
  d.push_back({"constant 0.3", std::vector<float>(n, 0.3f)});
  d.push_back({"constant -1234.5", std::vector<float>(n, -1234.5f)});
  auto tiny = t::gaussian(n, 5, 1e-6f);  // fp16 scales become subnormal
  d.push_back({"gaussian sigma 1e-6", tiny});
  std::vector<float> mixed = t::gaussian(n, 6);
  for (size_t i = 0; i < n; i += 97) mixed[i] *= 50.0f;  // rare outliers
  d.push_back({"gaussian with outliers", mixed});
  return d;
}

std::vector<float> roundtrip(const Format& f, const std::vector<float>& x, Method m,
                             const float* importance = nullptr) {
  std::vector<uint8_t> q(row_bytes(f, int64_t(x.size())));
  QuantizeOptions o;
  o.method = m;
  o.importance = importance;
  quantize_row(f, x.data(), int64_t(x.size()), q.data(), o);
  std::vector<float> y(x.size());
  dequantize_row(f, q.data(), int64_t(x.size()), y.data());
  return y;
}

// Worst-case |x - xhat| of round-to-nearest within one block, derived from the
// format: half a quantization step (a full step for the one code the 4-bit
// symmetric range cannot reach, +8), plus the storage rounding of the scale (and
// min) times the largest code: relative 2^-11 for fp16 (2^-8 for bf16), but at
// least half the fp16 subnormal spacing, 2^-25; plus fp32 arithmetic.
double rtn_bound(const Format& f, const float* x) {
  const int n = f.block_size();
  float mn = x[0], mx = x[0], amax = 0.0f;
  for (int j = 0; j < n; ++j) {
    mn = std::min(mn, x[j]);
    mx = std::max(mx, x[j]);
    amax = std::max(amax, std::fabs(x[j]));
  }
  const bool bf = f.kind == Kind::Int4 && f.scale == ScaleType::BF16;
  const double rel = bf ? 0x1p-8 : 0x1p-11, floor_abs = bf ? 0.0 : 0x1p-25;
  auto stored_err = [&](double v) { return std::max(rel * std::fabs(v), floor_abs); };
  double bound;
  if (f.has_min()) {
    const double step = (double(mx) - mn) / 15.0;
    bound = step / 2 + 15 * stored_err(step) + stored_err(mn);
  } else if (f.kind == Kind::Q8_0) {
    const double step = amax / 127.0;
    bound = step / 2 + 127 * stored_err(step);
  } else {
    const double step = amax / 8.0;
    bound = step + 8 * stored_err(step);
  }
  return bound * (1 + 1e-5) + 4e-7 * amax;
}

}  // namespace

TEST_CASE("round to nearest stays within the format's error bound", "[quantize]") {
  for (const auto& d : distributions(4096)) {
    for (const char* name : kFormats) {
      const Format f = Format::parse(name);
      const auto y = roundtrip(f, d.values, Method::RTN);
      const int bs = f.block_size();
      for (size_t b = 0; b < d.values.size() / size_t(bs); ++b) {
        const float* xb = d.values.data() + b * size_t(bs);
        const double bound = rtn_bound(f, xb);
        for (int j = 0; j < bs; ++j) {
          INFO(name << ", " << d.name << ", block " << b << ", element " << j);
          REQUIRE(std::fabs(double(xb[j]) - y[b * size_t(bs) + size_t(j)]) <= bound);
        }
      }
    }
  }
}

TEST_CASE("all-zero rows are exact; constant rows only lose the scale's rounding", "[quantize]") {
  for (const char* name : kFormats) {
    const Format f = Format::parse(name);
    const bool bf = f.kind == Kind::Int4 && f.scale == ScaleType::BF16;
    for (Method m : {Method::RTN, Method::Auto}) {
      INFO(name << (m == Method::RTN ? " rtn" : " auto"));
      const auto z = roundtrip(f, std::vector<float>(256, 0.0f), m);
      REQUIRE(std::all_of(z.begin(), z.end(), [](float v) { return v == 0.0f; }));
      for (float c : {0.3f, -1234.5f, 7.0f}) {
        const auto y = roundtrip(f, std::vector<float>(256, c), m);
        for (float v : y) REQUIRE(std::fabs(v - c) <= std::fabs(c) * (bf ? 0x1p-8 : 0x1p-11) * 1.0001);
      }
    }
  }
}

TEST_CASE("the search is never worse than round to nearest, and better on average", "[quantize]") {
  for (const char* name : kFormats) {
    const Format f = Format::parse(name);
    double sum_ratio = 0.0;
    int rows = 0;
    for (const auto& d : distributions(2048)) {
      const auto yr = roundtrip(f, d.values, Method::RTN);
      const auto ya = roundtrip(f, d.values, Method::Auto);
      const int bs = f.block_size();
      double row_r = 0.0, row_a = 0.0;
      for (size_t b = 0; b < d.values.size() / size_t(bs); ++b) {
        const size_t o = b * size_t(bs);
        const double er = t::sse(d.values.data() + o, yr.data() + o, size_t(bs));
        const double ea = t::sse(d.values.data() + o, ya.data() + o, size_t(bs));
        INFO(name << ", " << d.name << ", block " << b);
        REQUIRE(ea <= er * (1 + 1e-5) + 1e-30);  // per block, up to fp32 dequant rounding
        row_r += er;
        row_a += ea;
      }
      INFO(name << ", " << d.name << ": RMSE rtn " << std::sqrt(row_r / 2048) << ", auto "
                << std::sqrt(row_a / 2048));
      REQUIRE(row_a <= row_r * (1 + 1e-5) + 1e-30);
      if (row_r > 0.0) {
        sum_ratio += std::sqrt(row_a / row_r);
        ++rows;
      }
    }
    INFO(name << ": mean RMSE ratio auto / rtn = " << sum_ratio / rows);
    REQUIRE(sum_ratio / rows < 0.99);
  }
}

TEST_CASE("importance weights lower the weighted error where they point", "[quantize]") {
  const size_t n = 4096;
  std::vector<float> imp(n, 1.0f);
  std::mt19937 rng(9);
  for (size_t j = 0; j < n; ++j)
    if (rng() % 8 == 0) imp[j] = 50.0f;  // a few columns matter much more
  for (const char* name : {"q4_0", "q4_1", "q8_0", "int4_g128", "int4a_g64"}) {
    const Format f = Format::parse(name);
    double plain = 0.0, weighted = 0.0;
    for (uint64_t seed = 0; seed < 8; ++seed) {
      const auto x = t::gaussian(n, 100 + seed);
      plain += t::sse(x.data(), roundtrip(f, x, Method::Auto).data(), n, imp.data());
      weighted += t::sse(x.data(), roundtrip(f, x, Method::Auto, imp.data()).data(), n, imp.data());
    }
    INFO(name << ": weighted SSE without importance " << plain << ", with " << weighted);
    REQUIRE(weighted < 0.97 * plain);
  }
}

TEST_CASE("fp16 and bf16 input quantize like their fp32 values", "[quantize]") {
  const auto x = t::gaussian(512, 21);
  std::vector<f16> h(x.size());
  std::vector<bf16> b(x.size());
  std::vector<float> xh(x.size()), xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    h[i] = f16::from_float(x[i]);
    b[i] = bf16::from_float(x[i]);
    xh[i] = h[i].to_float();
    xb[i] = b[i].to_float();
  }
  for (const char* name : kFormats) {
    const Format f = Format::parse(name);
    const size_t bytes = row_bytes(f, 512);
    std::vector<uint8_t> q1(bytes), q2(bytes), q3(bytes), q4(bytes);
    quantize_row(f, h.data(), 512, q1.data());
    quantize_row(f, xh.data(), 512, q2.data());
    quantize_row(f, b.data(), 512, q3.data());
    quantize_row(f, xb.data(), 512, q4.data());
    INFO(name);
    REQUIRE(q1 == q2);
    REQUIRE(q3 == q4);
  }
}

TEST_CASE("quantize() of a matrix: strided views, thread count, errors name the row", "[quantize]") {
  const int64_t rows = 37, cols = 256;
  const auto x = t::gaussian(size_t(rows * cols), 31);
  // The same matrix stored transposed and viewed with swapped strides.
  std::vector<float> xt(x.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) xt[size_t(j * rows + i)] = x[size_t(i * cols + j)];
  const TensorView<const float> dense(x.data(), {rows, cols});
  const TensorView<const float> strided(xt.data(), {rows, cols}, {1, rows});
  for (const char* name : {"q4_0", "q8_0", "int4a_g128"}) {
    const Format f = Format::parse(name);
    const QMatrix a = quantize(dense, f);
    const QMatrix b = quantize(strided, f);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const QMatrix c = quantize(dense, f);
    omp_set_num_threads(saved);
    INFO(name);
    REQUIRE(std::equal(a.data(), a.data() + a.nbytes(), b.data()));
    REQUIRE(std::equal(a.data(), a.data() + a.nbytes(), c.data()));
    // dequantize into a strided (transposed) output equals the dense one
    std::vector<float> y(x.size()), yt(x.size());
    dequantize(a, TensorView<float>(y.data(), {rows, cols}));
    dequantize(a, TensorView<float>(yt.data(), {rows, cols}, {1, rows}));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) REQUIRE(y[size_t(i * cols + j)] == yt[size_t(j * rows + i)]);
  }
  std::vector<float> bad = x;
  bad[size_t(5 * cols + 17)] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(quantize(TensorView<const float>(bad.data(), {rows, cols}), Format::q4_0()),
                      Catch::Contains("x[17] is nan") && Catch::Contains("(row 5)"));
  REQUIRE_THROWS_WITH(quantize(TensorView<const float>(x.data(), {rows * cols}), Format::q4_0()),
                      Catch::Contains("expected a 2-D matrix"));
}

TEST_CASE("bad values are refused with a clear error", "[quantize]") {
  std::vector<float> x(64, 1.0f);
  std::vector<uint8_t> out(256);
  auto q = [&](const char* fmt, const QuantizeOptions& o = {}) {
    quantize_row(Format::parse(fmt), x.data(), 64, out.data(), o);
  };
  x[40] = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_WITH(q("q4_0"), Catch::Contains("x[40] is inf"));
  x[40] = 1.0f;
  std::vector<float> imp(64, 1.0f);
  imp[3] = -1.0f;
  QuantizeOptions o;
  o.importance = imp.data();
  REQUIRE_THROWS_WITH(q("q4_1", o), Catch::Contains("importance[3]"));
  // 1e6 / 8 exceeds fp16's 65504: the q4_0 scale cannot be stored; bf16 scales can.
  x[7] = 1e6f;
  for (const char* fmt : {"q4_0", "q4_1", "int4_g64"})
    REQUIRE_THROWS_WITH(q(fmt), Catch::Contains("overflows the fp16 scale"));
  REQUIRE_NOTHROW(q("q8_0"));  // 1e6 / 127 = 7874 fits
  REQUIRE_NOTHROW(q("int4_g64_bf16"));
}

TEST_CASE("subnormal inputs and scales stay defined", "[quantize]") {
  for (float v : {1e-40f, -3e-39f, 1e-7f, 6e-8f}) {
    std::vector<float> x(32, 0.0f);
    x[3] = v;
    x[9] = -v / 2;
    for (const char* name : kFormats) {
      const Format f = Format::parse(name);
      if (f.block_size() != 32) continue;
      for (Method m : {Method::RTN, Method::Auto}) {
        const auto y = roundtrip(f, x, m);
        INFO(name << " v = " << v);
        for (size_t j = 0; j < 32; ++j) {
          REQUIRE(std::isfinite(y[j]));
          REQUIRE(std::fabs(y[j] - x[j]) <= std::fabs(v) + 1e-7f);
        }
      }
    }
  }
}

TEST_CASE("the search's vector code assignment equals its scalar definition", "[quantize]") {
  // codes_of runs four values at a time where SSE2 is there; clamp_code_f is the
  // definition. Cases: NaN and infinite products, signed zeros, ties, huge values.
  std::vector<float> x = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 7.49999f, 7.5f, -8.5f,
                          1e30f, -1e30f, 3e-39f, std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), std::nanf("")};
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  while (x.size() < 128) x.push_back(nd(rng));
  const float inf = std::numeric_limits<float>::infinity();
  for (float inv : {1.0f, -1.0f, 0.37f, 127.0f / 2.5f, 1e38f, inf, -inf, 0.0f}) {
    for (float off : {0.0f, -0.0f, 1.25f, -3.0f}) {
      for (auto [lo, hi] : {std::pair{-8.0f, 7.0f}, {-127.0f, 127.0f}, {0.0f, 15.0f}, {-32.0f, 31.0f}}) {
        for (int n : {16, 32, 35, 128}) {
          float c[kMaxBlock];
          ref::codes_of(x.data(), n, off, inv, lo, hi, c);
          for (int j = 0; j < n; ++j) {
            const float want = ref::clamp_code_f((x[j] - off) * inv, lo, hi);
            INFO("x = " << x[j] << " off = " << off << " inv = " << inv << " [" << lo << ", " << hi << "]");
            REQUIRE(std::memcmp(&c[j], &want, sizeof(float)) == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("the search's sums: lanes in a fixed order, close to an exact sum", "[quantize]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int n : {16, 32, 64, 128}) {
    std::vector<float> x(static_cast<size_t>(n)), w(static_cast<size_t>(n));
    for (int j = 0; j < n; ++j) {
      x[size_t(j)] = nd(rng) * (j % 5 == 0 ? 100.0f : 1.0f);
      w[size_t(j)] = std::fabs(nd(rng));
    }
    ref::Codes q;
    q.d = 0.01f;
    q.m = 0.5f;
    for (int j = 0; j < n; ++j) q.c[j] = j % 16;
    long double exact = 0.0L;
    for (int j = 0; j < n; ++j) {
      const long double r = (long double)x[size_t(j)] - ((long double)q.d * q.c[j] + q.m);
      exact += (long double)w[size_t(j)] * r * r;
    }
    const double e = ref::block_error(x.data(), w.data(), n, q);
    REQUIRE(std::fabs((long double)e - exact) <= 1e-14L * exact);
    // The definition: term j into lane j % 8, lanes folded pairwise.
    double lanes[8] = {};
    for (int j = 0; j < n; ++j) {
      const double r = double(x[size_t(j)]) - (double(q.d) * q.c[j] + double(q.m));
      lanes[j % 8] += double(w[size_t(j)]) * r * r;
    }
    const double want = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    REQUIRE(e == want);
  }
}
