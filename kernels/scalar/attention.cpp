// Attention and SwiGLU activation, scalar: the reference the vector kernels are
// tested against (kernel_table.hpp has the contract).
#include <algorithm>
#include <cmath>

#include "halfbyte/core/half.hpp"
#include "kernel_table.hpp"

namespace halfbyte::kernels::scalar {
namespace {

template <class T>
float load(const void* p, int64_t i) {
  if constexpr (sizeof(T) == 4) return static_cast<const float*>(p)[i];
  else return fp16_to_fp32(static_cast<const uint16_t*>(p)[i]);
}

template <class T>
void attend(const AttnArgs& a) {
  for (int m = 0; m < a.M; ++m) {
    const float* q = a.q + m * a.ldq;
    float* s = a.scratch + m * a.lds;
    float mx = -INFINITY;
    for (int64_t j = 0; j < a.n_keys; ++j) {
      float acc = 0.0f;
      const int64_t k0 = (j / kKeyTile) * a.hd * kKeyTile + j % kKeyTile;
      for (int d = 0; d < a.hd; ++d) acc += q[d] * load<T>(a.kt, k0 + d * kKeyTile);
      s[j] = acc * a.scale;
      mx = std::max(mx, s[j]);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < a.n_keys; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    float* out = a.out + m * a.ldo;
    std::fill(out, out + a.hd, 0.0f);
    for (int64_t j = 0; j < a.n_keys; ++j)
      for (int d = 0; d < a.hd; ++d) out[d] += s[j] * load<T>(a.v, j * a.ldv + d);
    const float inv = 1.0f / sum;
    for (int d = 0; d < a.hd; ++d) out[d] *= inv;
    if (a.stats) {
      a.stats[2 * m] = mx;
      a.stats[2 * m + 1] = sum;
    }
  }
}

void pack_keys(const float* k, int64_t ldk, int64_t n, int hd, float* tiles) {
  const int64_t padded = (n + kKeyTile - 1) / kKeyTile * kKeyTile;
  for (int64_t j = 0; j < padded; ++j)
    for (int d = 0; d < hd; ++d)
      tiles[(j / kKeyTile) * hd * kKeyTile + d * kKeyTile + j % kKeyTile] = j < n ? k[j * ldk + d] : 0.0f;
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace

void fill_attention(KernelTable& t) {
  t.attend[0] = attend<float>;
  t.attend[1] = attend<uint16_t>;
  t.pack_keys = pack_keys;
  t.silu_mul = silu_mul;
}

}  // namespace halfbyte::kernels::scalar
