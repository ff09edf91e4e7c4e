// quantize_model: a small GGUF in, the written file re-read by GgufFile and decoded
// by the loader's decoders (src/io/ggml_dequant.cpp, quant::dequantize_row).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/io/gguf_writer.hpp"
#include "halfbyte/quant/imatrix.hpp"
#include "halfbyte/quant/model_quantize.hpp"
#include "model/linear.hpp"  // tensor_row_to_float
#include "test_util.hpp"

namespace fs = std::filesystem;
using halfbyte::io::GgmlType;
using halfbyte::io::GgufFile;
using halfbyte::io::GgufType;
using halfbyte::io::GgufValue;

namespace {

struct Dir : halfbyte::test::TempDir {
  Dir() : TempDir("hb-mq") {}
};

// A model-shaped GGUF: 2 layers of 256-wide matrices, a 1-D norm, an output head.
std::string write_source(const fs::path& dir, std::map<std::string, std::vector<float>>& values) {
  halfbyte::io::GgufWriter w;
  w.set("general.architecture", GgufValue{GgufType::STRING, std::string("llama")});
  w.set("llama.block_count", GgufValue{GgufType::U32, uint64_t(2)});
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"token_embd.weight", {256, 64}},      {"blk.0.attn_norm.weight", {256}},
      {"blk.0.attn_v.weight", {256, 32}},    {"blk.0.ffn_down.weight", {512, 256}},
      {"blk.1.attn_v.weight", {256, 32}},    {"blk.1.attn_q.weight", {256, 256}},
      {"blk.1.ffn_up.weight", {96, 64}},     {"output.weight", {256, 64}}};
  uint64_t seed = 1;
  for (const auto& [name, ne] : shapes) {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    values[name] = halfbyte::test::gaussian(size_t(n), seed++);
  }
  for (const auto& [name, ne] : shapes)
    w.add_tensor(name, ne, GgmlType::F32, values[name].data(), values[name].size() * 4);
  const std::string path = (dir / "src.gguf").string();
  w.write(path);
  return path;
}

}  // namespace

TEST_CASE("quantize_model: types by rule, file re-read and decoded within the reported error", "[quant][model]") {
  Dir d;
  std::map<std::string, std::vector<float>> src;
  const std::string in = write_source(d.p, src);
  for (const std::string type : {"q4_k_m", "q4_0", "q8_0", "f16"}) {
    INFO(type);
    halfbyte::quant::ModelQuantizeOptions o;
    o.type = type;
    const std::string out = (d.p / (type + ".gguf")).string();
    const auto table = halfbyte::quant::quantize_model(in, out, o);
    const GgufFile f = GgufFile::open(out);
    REQUIRE(f.get_string("general.architecture", "") == "llama");
    REQUIRE(f.get_int("general.quantization_version", 0) == 2);
    REQUIRE(table.size() == f.tensors().size());
    std::map<std::string, std::string> want;
    if (type == "q4_k_m")  // the documented mix for 2 layers: layer 1 is the last eighth
      want = {{"token_embd.weight", "q6_K"}, {"blk.0.attn_norm.weight", "f32"}, {"blk.0.attn_v.weight", "q4_K"},
              {"blk.0.ffn_down.weight", "q4_K"}, {"blk.1.attn_v.weight", "q6_K"}, {"blk.1.attn_q.weight", "q4_K"},
              {"blk.1.ffn_up.weight", "q5_0"}, {"output.weight", "q6_K"}};
    for (size_t k = 0; k < table.size(); ++k) {
      const auto& row = table[k];
      const auto& t = f.tensors()[k];
      INFO(row.name);
      REQUIRE(t.name == row.name);
      REQUIRE(halfbyte::io::ggml_type_info(t.type).name == row.type);
      REQUIRE(t.nbytes == row.bytes);
      if (!want.empty()) CHECK(row.type == want[row.name]);
      if (t.ne.size() == 1) CHECK(row.type == std::string("f32"));
      if (type == "q4_0" && t.ne.size() == 2)  // the head at q6_K, ffn_up's 96 columns fit q4_0
        CHECK(row.type == std::string(row.name == "output.weight" ? "q6_K" : "q4_0"));
      // Decode every row with the loader and measure the error against the source.
      const auto& x = src[row.name];
      const int64_t n = t.ne[0], rows = t.numel() / n;
      std::vector<float> y(static_cast<size_t>(n));
      double e2 = 0, s2 = 0;
      for (int64_t r = 0; r < rows; ++r) {
        halfbyte::model::tensor_row_to_float(f, t, r, y.data());
        for (int64_t i = 0; i < n; ++i) {
          const double v = x[size_t(r * n + i)], e = v - y[size_t(i)];
          e2 += e * e;
          s2 += v * v;
        }
      }
      const double rel = std::sqrt(e2 / s2);
      CHECK(row.rel_rms_error == Approx(rel).epsilon(1e-6).margin(1e-12));
      // Bounds of the formats on N(0, 1) rows (relative RMS): 4-bit ~0.07-0.09,
      // 5-bit ~0.04, 6-bit ~0.02, 8-bit ~0.005, fp16 ~3e-4.
      const std::map<std::string, double> bound = {{"q4_0", 0.1}, {"q4_K", 0.09}, {"q5_0", 0.05},
                                                   {"q6_K", 0.025}, {"q8_0", 0.006}, {"f16", 4e-4}, {"f32", 0.0}};
      CHECK(rel <= bound.at(row.type));
    }
  }
}

TEST_CASE("quantize_model: an imatrix lowers the weighted error; bad requests", "[quant][model]") {
  Dir d;
  std::map<std::string, std::vector<float>> src;
  const std::string in = write_source(d.p, src);
  // Importance: a few columns carry almost all of it.
  halfbyte::quant::Imatrix im;
  im.chunk_count = 1;
  im.chunk_size = 8;
  im.datasets = {"test"};
  std::vector<double> imp(256);
  for (size_t j = 0; j < imp.size(); ++j) imp[j] = j % 9 == 0 ? 100.0 : 0.01;
  im.entries["blk.1.attn_q.weight"] = {imp, 1.0};
  const std::string imf = (d.p / "im.gguf").string();
  halfbyte::quant::save_imatrix(imf, im);
  const auto back = halfbyte::quant::load_imatrix(imf);
  REQUIRE(back.entries.size() == 1);
  REQUIRE(back.entries.at("blk.1.attn_q.weight").importance()[9] == Approx(100.0));
  REQUIRE(back.datasets == std::vector<std::string>{"test"});

  auto weighted_error = [&](const std::string& imatrix) {
    halfbyte::quant::ModelQuantizeOptions o;
    o.type = "q4_k";
    o.imatrix = imatrix;
    const std::string out = (d.p / "w.gguf").string();
    halfbyte::quant::quantize_model(in, out, o);
    const GgufFile f = GgufFile::open(out);
    const auto& t = f.tensor("blk.1.attn_q.weight");
    std::vector<float> y(256);
    double e = 0;
    for (int64_t r = 0; r < 256; ++r) {
      halfbyte::model::tensor_row_to_float(f, t, r, y.data());
      for (int i = 0; i < 256; ++i) {
        const double diff = src["blk.1.attn_q.weight"][size_t(r * 256 + i)] - y[size_t(i)];
        e += imp[size_t(i)] * diff * diff;
      }
    }
    return e;
  };
  CHECK(weighted_error(imf) < 0.5 * weighted_error(""));

  halfbyte::quant::ModelQuantizeOptions o;
  o.type = "q4_x";
  REQUIRE_THROWS_WITH(halfbyte::quant::quantize_model(in, (d.p / "o.gguf").string(), o), Catch::Contains("unknown type 'q4_x'"));
  o.type = "q4_0";
  REQUIRE_THROWS_WITH(halfbyte::quant::quantize_model(in, (d.p / "no" / "o.gguf").string(), o),
                      Catch::Contains("does not exist"));
  o.imatrix = in;  // a model, not an imatrix
  REQUIRE_THROWS_WITH(halfbyte::quant::quantize_model(in, (d.p / "o.gguf").string(), o), Catch::Contains("imatrix"));
  o.imatrix.clear();
  o.progress = [](size_t i, size_t, const std::string&, float) { return i < 3; };
  REQUIRE_THROWS_WITH(halfbyte::quant::quantize_model(in, (d.p / "o.gguf").string(), o), Catch::Contains("cancelled"));
  REQUIRE(!fs::exists(d.p / "o.gguf"));
}
