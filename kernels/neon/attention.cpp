// Attention and SwiGLU activation with AArch64 NEON (+fp16 conversions): the
// AVX-512 scheme (kernels/avx512/attention.cpp) with 4 lanes. Contract:
// kernel_table.hpp. Internal linkage throughout (this file has its own -march).
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>

#include "kernel_table.hpp"

namespace halfbyte::kernels::neon {
namespace {

// exp(x), x clamped to [-87, 88]: 2^n * p(r) as in the AVX-512 file.
inline float32x4_t exp_ps(float32x4_t x) {
  x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.0f)), vdupq_n_f32(88.0f));
  const int32x4_t ni = vcvtnq_s32_f32(vmulq_n_f32(x, 1.44269504088896341f));
  const float32x4_t n = vcvtq_f32_s32(ni);
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
  const int32x4_t e = vshlq_n_s32(vaddq_s32(ni, vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vld1_dup_u16(p))), 0); }

template <class T, int MR>
void scores(const AttnArgs& a, int m0) {
  const T* kt = static_cast<const T*>(a.kt);
  for (int64_t j = 0; j < a.n_keys; j += 16) {
    float32x4_t acc[MR][4];
    for (int m = 0; m < MR; ++m)
      for (int i = 0; i < 4; ++i) acc[m][i] = vdupq_n_f32(0.0f);
    const T* kp = kt + (j / kKeyTile) * a.hd * kKeyTile + j % kKeyTile;
    for (int d = 0; d < a.hd; ++d, kp += kKeyTile) {
      float32x4_t k[4];
      for (int i = 0; i < 4; ++i) k[i] = load4(kp + 4 * i);  // a tile's padding is readable
      for (int m = 0; m < MR; ++m) {
        const float qv = a.q[(m0 + m) * a.ldq + d];
        for (int i = 0; i < 4; ++i) acc[m][i] = vfmaq_n_f32(acc[m][i], k[i], qv);
      }
    }
    for (int m = 0; m < MR; ++m) {
      float* s = a.scratch + (m0 + m) * a.lds + j;
      for (int i = 0; i < 4; ++i) vst1q_f32(s + 4 * i, vmulq_n_f32(acc[m][i], a.scale));
    }
  }
}

// The largest of s[0..n).
float row_max(const float* s, int64_t n) {
  const int64_t full = n / 4 * 4;
  float32x4_t mx = vdupq_n_f32(-INFINITY);
  for (int64_t j = 0; j < full; j += 4) mx = vmaxq_f32(mx, vld1q_f32(s + j));
  float m = vmaxvq_f32(mx);
  for (int64_t j = full; j < n; ++j) m = std::max(m, s[j]);
  return m;
}

float softmax_row(float* s, int64_t n) {
  const int64_t full = n / 4 * 4;
  const float m = row_max(s, n);
  const float32x4_t mv = vdupq_n_f32(m);
  float32x4_t sum = vdupq_n_f32(0.0f);
  for (int64_t j = 0; j < full; j += 4) {
    const float32x4_t e = exp_ps(vsubq_f32(vld1q_f32(s + j), mv));
    vst1q_f32(s + j, e);
    sum = vaddq_f32(sum, e);
  }
  if (full < n) {
    float t[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    std::memcpy(t, s + full, size_t(n - full) * 4);
    float e[4];
    vst1q_f32(e, exp_ps(vsubq_f32(vld1q_f32(t), mv)));
    for (int64_t j = full; j < n; ++j) {
      s[j] = e[j - full];
      sum = vsetq_lane_f32(vgetq_lane_f32(sum, 0) + e[j - full], sum, 0);
    }
  }
  return vaddvq_f32(sum);
}

template <class T, int MR, int NV>
void pv(const AttnArgs& a, int m0, int d0, const float* inv) {
  const T* v = static_cast<const T*>(a.v) + d0;
  float32x4_t acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < NV; ++i) acc[m][i] = vdupq_n_f32(0.0f);
  for (int64_t j = 0; j < a.n_keys; ++j, v += a.ldv) {
    float32x4_t vv[NV];
    for (int i = 0; i < NV; ++i) vv[i] = load4(v + 4 * i);
    for (int m = 0; m < MR; ++m) {
      const float p = a.scratch[(m0 + m) * a.lds + j];
      for (int i = 0; i < NV; ++i) acc[m][i] = vfmaq_n_f32(acc[m][i], vv[i], p);
    }
  }
  for (int m = 0; m < MR; ++m) {
    float* out = a.out + (m0 + m) * a.ldo + d0;
    for (int i = 0; i < NV; ++i) vst1q_f32(out + 4 * i, vmulq_n_f32(acc[m][i], inv[m0 + m]));
  }
}

template <class T>
void pv_tail(const AttnArgs& a, int m, int d0, float inv) {
  const T* v = static_cast<const T*>(a.v);
  float* out = a.out + m * a.ldo;
  const float* p = a.scratch + m * a.lds;
  for (int d = d0; d < a.hd; ++d) {
    float acc = 0.0f;
    for (int64_t j = 0; j < a.n_keys; ++j) acc += p[j] * load1(v + j * a.ldv + d);
    out[d] = acc * inv;
  }
}

template <class T, int MR>
void pv_rows(const AttnArgs& a, int m0, const float* inv) {
  const int full = a.hd / 4 * 4;
  int d0 = 0;
  for (; d0 + 16 <= full; d0 += 16) pv<T, MR, 4>(a, m0, d0, inv);
  for (; d0 + 4 <= full; d0 += 4) pv<T, MR, 1>(a, m0, d0, inv);
  if (full < a.hd)
    for (int m = 0; m < MR; ++m) pv_tail<T>(a, m0 + m, full, inv[m0 + m]);
}

constexpr int kScoreRows = 4;
void softmax_rows(float* s, int64_t lds, int64_t n, int rows, float* inv) {
  for (int r = 0; r < rows; ++r) inv[r] = 1.0f / softmax_row(s + r * lds, n);
}

#include "attention_driver.inl"

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t x = vld1q_f32(g + i);
    const float32x4_t e = exp_ps(vnegq_f32(x));
    vst1q_f32(out + i, vmulq_f32(vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e)), vld1q_f32(u + i)));
  }
  if (i < n) {
    float gx[4] = {}, ux[4] = {}, o[4];
    std::memcpy(gx, g + i, size_t(n - i) * 4);
    std::memcpy(ux, u + i, size_t(n - i) * 4);
    silu_mul(gx, ux, o, 4);
    std::memcpy(out + i, o, size_t(n - i) * 4);
  }
}

}  // namespace

void fill_attention(KernelTable& t) {
  t.attend[0] = attend<float>;
  t.attend[1] = attend<uint16_t>;
  t.attend_block[0] = attend_block<float>;
  t.attend_block[1] = attend_block<uint16_t>;
  t.silu_mul = silu_mul;
}

}  // namespace halfbyte::kernels::neon
