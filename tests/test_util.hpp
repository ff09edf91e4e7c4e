// Small helpers shared by the C++ tests.
#pragma once

#include <cmath>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace halfbyte::test {

inline std::vector<float> gaussian(size_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng{seed};
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline std::vector<float> uniform(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng{seed};
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Student-t with 2 degrees of freedom: heavy tails, outliers in most blocks.
inline std::vector<float> heavy_tailed(size_t n, uint64_t seed) {
  std::mt19937_64 rng{seed};
  std::student_t_distribution<float> d(2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline double sse(const float* a, const float* b, size_t n, const float* w = nullptr) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double r = double(a[i]) - double(b[i]);
    s += (w ? double(w[i]) : 1.0) * r * r;
  }
  return s;
}

inline std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  int hi = -1;
  for (char c : hex) {
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(uint8_t(hi * 16 + v));
      hi = -1;
    }
  }
  return out;
}

// A fresh folder under the system's temporary directory, removed with its contents
// when the object goes out of scope.
struct TempDir {
  std::filesystem::path p;
  explicit TempDir(const std::string& prefix) {
    static std::atomic<int> counter{0};
    p = std::filesystem::temp_directory_path() /
        (prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(p);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace halfbyte::test
