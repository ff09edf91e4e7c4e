// `halfbyte formats`: the quantization error of every format on a Gaussian matrix,
// round-to-nearest against the error-minimising search. docs/FORMATS.md quotes it.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "halfbyte/halfbyte.hpp"

namespace halfbyte::cli {
namespace {

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i] - b[i]) * double(a[i] - b[i]);
  return std::sqrt(s / double(a.size()));
}

long parse_int(const std::string& flag, const std::string& v) {
  try {
    size_t pos = 0;
    long x = std::stol(v, &pos);
    if (pos == v.size() && x > 0) return x;
  } catch (...) {
  }
  throw_invalid(flag, " expects a positive integer, got '", v, "'");
}

}  // namespace

int cmd_formats(const Args& args) {
  long rows = 256, cols = 4096, seed = 1;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw_invalid(a, " needs a value");
      return args[++i];
    };
    if (a == "--rows") rows = parse_int(a, value());
    else if (a == "--cols") cols = parse_int(a, value());
    else if (a == "--seed") seed = parse_int(a, value());
    else if (a == "-h" || a == "--help") {
      std::printf("usage: halfbyte formats [--rows R] [--cols C] [--seed S]\n"
                  "Quantizes an R x C matrix of N(0, 1) values (default 256 x 4096, seed 1)\n"
                  "in every format and prints bits/weight and the RMSE of round-to-nearest\n"
                  "(rtn) and of the error-minimising search (auto).\n");
      return 0;
    } else {
      throw_invalid("unknown option '", a, "' (see halfbyte formats --help)");
    }
  }
  if (cols % 128 != 0) throw_invalid("--cols must be a multiple of 128, got ", cols);

  std::mt19937_64 rng{static_cast<uint64_t>(seed)};
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(rows * cols)), y(x.size());
  for (float& v : x) v = normal(rng);
  TensorView<const float> xv(x.data(), {rows, cols});

  const char* names[] = {"q4_0",     "q4_1",      "q8_0",      "int4_g32", "int4_g64",
                         "int4_g128", "int4a_g32", "int4a_g64", "int4a_g128", "int4_g128_bf16"};
  std::printf("Gaussian N(0,1) matrix %ld x %ld, seed %ld; RMSE of the dequantized values\n\n",
              rows, cols, seed);
  std::printf("| format | bits/weight | RMSE rtn | RMSE auto | auto vs rtn |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  for (const char* name : names) {
    const quant::Format f = quant::Format::parse(name);
    double e[2];
    for (int m = 0; m < 2; ++m) {
      quant::QuantizeOptions o;
      o.method = m == 0 ? quant::Method::RTN : quant::Method::Auto;
      const quant::QMatrix q = quant::quantize(xv, f, o);
      quant::dequantize(q, TensorView<float>(y.data(), {rows, cols}));
      e[m] = rmse(x, y);
    }
    std::printf("| %s | %.3f | %.5f | %.5f | %+.1f%% |\n", name, f.bits_per_weight(), e[0], e[1],
                100.0 * (e[1] - e[0]) / e[0]);
  }
  return 0;
}

}  // namespace halfbyte::cli
