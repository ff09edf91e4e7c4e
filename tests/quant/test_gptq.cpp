// GPTQ on ggml block formats (src/quant/gptq.cpp) and the block element grids it
// uses (src/quant/row_codec.cpp); importance matrices with covariances.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf_writer.hpp"
#include "halfbyte/quant/imatrix.hpp"
#include "halfbyte/quant/model_quantize.hpp"
#include "halfbyte/io/gguf.hpp"
#include "quant/gptq.hpp"
#include "quant/row_codec.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using halfbyte::io::GgmlType;
using namespace halfbyte::quant;

namespace {

const GgmlType kGridTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q5_0,
                               GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

size_t row_bytes(GgmlType t, int64_t n) {
  const auto& ti = halfbyte::io::ggml_type_info(t);
  return size_t(n / ti.block) * size_t(ti.block_bytes);
}

// Correlated activations: x = z M with M a random mixing matrix plus a few
// large-variance columns (as LLM activations have), so H = X^T X is far from diagonal.
std::vector<float> activations(int64_t tokens, int64_t n, uint64_t seed) {
  const std::vector<float> z = halfbyte::test::gaussian(size_t(tokens * n), seed);
  const std::vector<float> m = halfbyte::test::gaussian(size_t(n * n), seed + 1, 1.0f / std::sqrt(float(n)));
  std::vector<float> x(size_t(tokens * n), 0.0f);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < n; ++k) {
      const float zk = z[size_t(t * n + k)];
      for (int64_t j = 0; j < n; ++j) x[size_t(t * n + j)] += zk * (m[size_t(k * n + j)] + (j == k ? 0.5f : 0.0f));
    }
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < n; j += 37) x[size_t(t * n + j)] *= 6.0f;
  return x;
}

// sum over rows of e H e^T, e = w - q: the layer's output error on the activations.
double output_error(const std::vector<float>& w, const std::vector<float>& q, const std::vector<float>& h,
                    int64_t rows, int64_t n) {
  double total = 0.0;
  std::vector<double> e(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) e[size_t(j)] = double(w[size_t(r * n + j)]) - q[size_t(r * n + j)];
    for (int64_t i = 0; i < n; ++i) {
      double s = 0.0;
      for (int64_t j = 0; j < n; ++j) s += double(h[size_t(i * n + j)]) * e[size_t(j)];
      total += e[size_t(i)] * s;
    }
  }
  return total;
}

}  // namespace

TEST_CASE("element grids: every decoded value is a grid point, set_code changes one element", "[quant][gptq]") {
  for (GgmlType t : kGridTypes) {
    const auto& ti = halfbyte::io::ggml_type_info(t);
    const int B = int(ti.block);
    CAPTURE(ti.name);
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      const std::vector<float> x = halfbyte::test::heavy_tailed(size_t(B), seed);
      std::vector<uint8_t> blk(size_t(ti.block_bytes));
      encode_row(t, x.data(), B, nullptr, blk.data());
      std::vector<float> y(static_cast<size_t>(B)), y2(static_cast<size_t>(B));
      decode_row(t, blk.data(), B, y.data());
      std::mt19937_64 rng{seed};
      for (int j = 0; j < B; ++j) {
        const ElementGrid g = element_grid(t, blk.data(), j);
        const int q = g.nearest(y[size_t(j)]);
        REQUIRE(q >= g.lo);
        REQUIRE(q <= g.hi);
        REQUIRE(g.value(q) == y[size_t(j)]);  // exactly the decoder's arithmetic
        // Another code for element j: only it changes, to that grid point.
        const int q2 = g.lo + int(rng() % uint64_t(g.hi - g.lo + 1));
        std::vector<uint8_t> b2 = blk;
        set_code(t, b2.data(), j, q2);
        decode_row(t, b2.data(), B, y2.data());
        for (int i = 0; i < B; ++i) REQUIRE(y2[size_t(i)] == (i == j ? g.value(q2) : y[size_t(i)]));
        set_code(t, b2.data(), j, q);
        REQUIRE(b2 == blk);
      }
    }
  }
  REQUIRE_FALSE(has_element_grid(GgmlType::F16));
  std::vector<uint8_t> b(64);
  REQUIRE_THROWS_AS(element_grid(GgmlType::F16, b.data(), 0), halfbyte::Error);
}

TEST_CASE("gptq: lower output error than importance-weighted quantization on correlated activations",
          "[quant][gptq]") {
  const int64_t rows = 24, n = 512, tokens = 1024;
  const std::vector<float> x = activations(tokens, n, 7);
  std::vector<float> h(size_t(n * n), 0.0f), imp(size_t(n), 0.0f);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < n; ++i) {
      const float xi = x[size_t(t * n + i)];
      imp[size_t(i)] += xi * xi / float(tokens);
      for (int64_t j = 0; j < n; ++j) h[size_t(i * n + j)] += xi * x[size_t(t * n + j)];
    }
  const std::vector<float> w = halfbyte::test::gaussian(size_t(rows * n), 11, 0.05f);
  const GptqFactor f = gptq_factor(h.data(), n);
  {
    // U is upper triangular with U^T U = (H + 1% of its mean diagonal)^-1.
    double mean = 0.0;
    for (int64_t i = 0; i < n; ++i) mean += h[size_t(i * n + i)] / double(n);
    std::vector<double> utu(size_t(n * n), 0.0);
    for (int64_t k = 0; k < n; ++k)
      for (int64_t i = k; i < n; ++i)
        for (int64_t j = k; j < n; ++j) utu[size_t(i * n + j)] += double(f.u[size_t(k * n + i)]) * f.u[size_t(k * n + j)];
    double worst = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < i; ++j) REQUIRE(f.u[size_t(i * n + j)] == 0.0f);
      for (int64_t j = 0; j < n; j += 7) {  // (U^T U)(H + damp I) = I, a column sample
        double s = 0.0;
        for (int64_t k = 0; k < n; ++k) s += utu[size_t(i * n + k)] * (h[size_t(k * n + j)] + (k == j ? 0.01 * mean : 0.0));
        worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
      }
    }
    CAPTURE(worst);
    REQUIRE(worst < 1e-3);  // U is stored in fp32
  }
  // Measured (seeds above): GPTQ's output error is 0.43-0.56x the importance-weighted one.
  for (GgmlType t : kGridTypes) {
    const auto& ti = halfbyte::io::ggml_type_info(t);
    CAPTURE(ti.name);
    const size_t rb = row_bytes(t, n);
    std::vector<uint8_t> plain(rb * size_t(rows)), gq(rb * size_t(rows));
    for (int64_t r = 0; r < rows; ++r) encode_row(t, w.data() + r * n, n, imp.data(), plain.data() + size_t(r) * rb);
    std::vector<float> scratch = w;
    gptq_rows(t, f, scratch.data(), rows, imp.data(), gq.data(), rb);
    std::vector<float> qp(w.size()), qg(w.size());
    for (int64_t r = 0; r < rows; ++r) {
      decode_row(t, plain.data() + size_t(r) * rb, n, qp.data() + r * n);
      decode_row(t, gq.data() + size_t(r) * rb, n, qg.data() + r * n);
    }
    const double ep = output_error(w, qp, h, rows, n), eg = output_error(w, qg, h, rows, n);
    INFO("output error: importance " << ep << ", gptq " << eg << " (" << eg / ep << "x)");
    REQUIRE(eg < 0.75 * ep);
    // Rows are independent: the same rows in smaller groups give the same bytes.
    std::vector<uint8_t> gq2(rb * size_t(rows));
    std::vector<float> s2 = w;
    for (int64_t r = 0; r < rows; r += 5)
      gptq_rows(t, f, s2.data() + r * n, std::min<int64_t>(5, rows - r), imp.data(), gq2.data() + size_t(r) * rb, rb);
    REQUIRE(gq2 == gq);
  }
}

TEST_CASE("gptq: bad statistics and shapes are refused", "[quant][gptq]") {
  const int64_t n = 64;
  std::vector<float> h(size_t(n * n), 0.0f);
  REQUIRE_THROWS_WITH(gptq_factor(h.data(), n), Catch::Contains("all zero"));
  for (int64_t i = 0; i < n; ++i) h[size_t(i * n + i)] = 1.0f;
  h[5 * n + 5] = -1.0f;
  REQUIRE_THROWS_WITH(gptq_factor(h.data(), n), Catch::Contains("negative or non-finite diagonal entry at column 5"));
  h[5 * n + 5] = std::nanf("");
  REQUIRE_THROWS_WITH(gptq_factor(h.data(), n), Catch::Contains("column 5"));
  h[5 * n + 5] = 1.0f;
  const GptqFactor f = gptq_factor(h.data(), n);
  std::vector<float> w(size_t(n), 0.5f);
  std::vector<uint8_t> out(256);
  REQUIRE_THROWS_WITH(gptq_rows(GgmlType::Q4_K, f, w.data(), 1, nullptr, out.data(), 144),
                      Catch::Contains("not a whole number of q4_K blocks"));
  REQUIRE_THROWS_WITH(gptq_rows(GgmlType::F16, f, w.data(), 1, nullptr, out.data(), 128),
                      Catch::Contains("not a block format"));
}

TEST_CASE("imatrix files keep covariances, shared ones once", "[quant][gptq][imatrix]") {
  const halfbyte::test::TempDir tmp("hb-gptq");
  const fs::path& dir = tmp.p;
  const int64_t n = 8;
  const std::vector<float> x = halfbyte::test::gaussian(size_t(20 * n), 3);
  Imatrix im;
  im.covariance = true;
  accumulate(im.entries["blk.0.attn_q.weight"], "blk.0.attn_q.weight", x.data(), 20, n, n, true);
  im.entries["blk.0.attn_k.weight"] = im.entries["blk.0.attn_q.weight"];  // one input, two matrices
  accumulate(im.entries["blk.0.ffn_down.weight"], "blk.0.ffn_down.weight", x.data(), 10, n, n, true);
  accumulate(im.entries["output.weight"], "output.weight", x.data(), 5, n, n, false);
  const auto& q = im.entries["blk.0.attn_q.weight"];
  REQUIRE(q.count == 20.0);
  double c01 = 0.0;
  for (int t = 0; t < 20; ++t) c01 += double(x[size_t(t * n)]) * x[size_t(t * n + 1)];
  REQUIRE((*q.cov)[1] == Approx(c01).epsilon(1e-5));
  REQUIRE((*q.cov)[size_t(n)] == (*q.cov)[1]);
  const std::string path = (dir / "im.gguf").string();
  save_imatrix(path, im);
  const Imatrix back = load_imatrix(path);
  REQUIRE(back.covariance);
  for (const char* name : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight"}) {
    CAPTURE(name);
    REQUIRE(back.entries.at(name).cov);
    REQUIRE(*back.entries.at(name).cov == *im.entries.at(name).cov);
  }
  REQUIRE(back.entries.at("blk.0.attn_q.weight").cov == back.entries.at("blk.0.attn_k.weight").cov);
  REQUIRE_FALSE(back.entries.at("output.weight").cov);
  // Stored once: one in_cov tensor for the shared pair.
  const auto f = halfbyte::io::GgufFile::open(path);
  int covs = 0;
  for (const auto& t : f.tensors()) covs += t.name.find(".in_cov") != std::string::npos;
  REQUIRE(covs == 2);

  // Hostile: a covariance of the wrong shape, a negative diagonal, no sum2 entry.
  const auto write_bad = [&](const std::string& cov_name, std::vector<int64_t> ne, std::vector<float> v) {
    halfbyte::io::GgufWriter w;
    w.set("general.type", halfbyte::io::GgufValue{halfbyte::io::GgufType::STRING, std::string("imatrix")});
    std::vector<float> s2(size_t(n), 1.0f), cnt{4.0f};
    w.add_tensor("a.weight.in_sum2", {n, 1}, GgmlType::F32, s2.data(), s2.size() * 4);
    w.add_tensor("a.weight.counts", {1, 1}, GgmlType::F32, cnt.data(), 4);
    w.add_tensor(cov_name, ne, GgmlType::F32, v.data(), v.size() * 4);
    const std::string p = (dir / "bad.gguf").string();
    w.write(p);
    return p;
  };
  std::vector<float> eye(size_t(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i) eye[size_t(i * n + i)] = 1.0f;
  REQUIRE_THROWS_WITH(load_imatrix(write_bad("a.weight.in_cov", {n, n - 1}, std::vector<float>(size_t(n * (n - 1))))),
                      Catch::Contains("should be 8 x 8"));
  std::vector<float> neg = eye;
  neg[3 * n + 3] = -2.0f;
  REQUIRE_THROWS_WITH(load_imatrix(write_bad("a.weight.in_cov", {n, n}, neg)), Catch::Contains("negative diagonal"));
  REQUIRE_THROWS_WITH(load_imatrix(write_bad("b.weight.in_cov", {n, n}, eye)), Catch::Contains("has no 'b.weight.in_sum2'"));
}

TEST_CASE("quantize_model: GPTQ where the imatrix has covariances, importance only where they are unusable",
          "[quant][gptq][model]") {
  const halfbyte::test::TempDir tmp("hb-gptq-model");
  const fs::path& dir = tmp.p;
  const int64_t n = 64, rows = 32;
  halfbyte::io::GgufWriter src;
  src.set("general.architecture", halfbyte::io::GgufValue{halfbyte::io::GgufType::STRING, std::string("llama")});
  src.set("llama.block_count", halfbyte::io::GgufValue{halfbyte::io::GgufType::U32, uint64_t(1)});
  const std::vector<float> wq = halfbyte::test::gaussian(size_t(rows * n), 1), wk = halfbyte::test::gaussian(size_t(rows * n), 2);
  src.add_tensor("blk.0.attn_q.weight", {n, rows}, GgmlType::F32, wq.data(), wq.size() * 4);
  src.add_tensor("blk.0.attn_k.weight", {n, rows}, GgmlType::F32, wk.data(), wk.size() * 4);
  const std::string src_path = (dir / "src.gguf").string();
  src.write(src_path);

  Imatrix im;
  im.covariance = true;
  const std::vector<float> x = activations(200, n, 5);
  accumulate(im.entries["blk.0.attn_q.weight"], "blk.0.attn_q.weight", x.data(), 200, n, n, true);
  auto& k = im.entries["blk.0.attn_k.weight"];  // statistics that reached no column
  k.sum2.assign(size_t(n), 0.0);
  k.count = 200;
  k.cov = std::make_shared<std::vector<float>>(size_t(n * n), 0.0f);
  const std::string im_path = (dir / "im.gguf").string();
  save_imatrix(im_path, im);

  std::vector<std::string> warnings;
  ModelQuantizeOptions o;
  o.type = "q4_0";
  o.imatrix = im_path;
  o.warn = [&](const std::string& m) { warnings.push_back(m); };
  const auto gq = quantize_model(src_path, (dir / "gptq.gguf").string(), o);
  o.gptq = false;
  const auto plain = quantize_model(src_path, (dir / "plain.gguf").string(), o);
  bool warned = false;
  for (const auto& m : warnings) warned |= m.find("'blk.0.attn_k.weight' is quantized without GPTQ") != std::string::npos;
  REQUIRE(warned);
  const auto a = halfbyte::io::GgufFile::open((dir / "gptq.gguf").string());
  const auto b = halfbyte::io::GgufFile::open((dir / "plain.gguf").string());
  const auto bytes = [](const halfbyte::io::GgufFile& f, const char* name) {
    const auto& t = f.tensor(name);
    return std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes);
  };
  REQUIRE(bytes(a, "blk.0.attn_k.weight") == bytes(b, "blk.0.attn_k.weight"));  // importance only in both
  REQUIRE(bytes(a, "blk.0.attn_q.weight") != bytes(b, "blk.0.attn_q.weight"));  // GPTQ changed the codes
  // The reported error of the GPTQ'd matrix is larger (GPTQ trades weight error for output error).
  REQUIRE(gq[0].name == "blk.0.attn_q.weight");
  REQUIRE(gq[0].rel_rms_error > plain[0].rel_rms_error);
}
