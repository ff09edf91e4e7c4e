// Quantizes a random matrix to 4 bits and reports the error: the smallest useful
// program against halfbyte's C++ API.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <halfbyte/halfbyte.hpp>

int main() {
  namespace q = halfbyte::quant;
  const int64_t rows = 64, cols = 1024;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(size_t(rows * cols)), back(w.size());
  for (float& v : w) v = normal(rng);

  std::printf("halfbyte %s, kernels: %s\n", halfbyte::library_version(), halfbyte::isa().c_str());
  for (const char* name : {"q4_0", "q4_1", "q8_0", "int4_g128"}) {
    const q::Format fmt = q::Format::parse(name);
    const q::QMatrix qm = q::quantize(halfbyte::TensorView<const float>(w.data(), {rows, cols}), fmt);
    q::dequantize(qm, halfbyte::TensorView<float>(back.data(), {rows, cols}));
    double se = 0.0;
    for (size_t i = 0; i < w.size(); ++i) se += double(w[i] - back[i]) * (w[i] - back[i]);
    const double rmse = std::sqrt(se / double(w.size()));
    std::printf("%s RMSE %.4f, %zu bytes (%.2f bits/weight)\n", name, rmse, qm.nbytes(),
                8.0 * double(qm.nbytes()) / double(w.size()));
    if (!(rmse < 0.12)) return 1;  // 4-bit on N(0,1) is ~0.08; far above means broken
  }
  return 0;
}
