// Inputs of a prompt-attention case (kernel_table.hpp's AttnBlockArgs) for the
// attend_block tests (test_attention_block.cpp: fp32 kernels; test_amx_attention.cpp:
// bf16 tiles): random q, K and V (rounded to fp16 for an fp16 cache), the cache's
// layouts (K in tiles of kKeyTile keys, V rows at a stride wider than hd), padding
// keys past the last one NaN (never to be read into a result), rows at strides wider
// than group * hd.
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "halfbyte/core/half.hpp"
#include "kernel_table.hpp"

namespace halfbyte::test {

struct BlockCase {
  int T, group, hd;
  int64_t pos0;  // position of the run's first token: it sees pos0 + 1 keys
  bool f16;
  float q_scale;
};

struct BlockInputs {
  int64_t n0, nk_max, ldq, ldo, ldv;
  std::vector<float> q, k, v;  // k: key j, dim d at k[j hd + d]; v: row j at v[j ldv]
  std::vector<float> kt;       // K as the cache tiles it
  std::vector<uint16_t> kt16, v16;

  kernels::AttnBlockArgs args(const BlockCase& c, float scale, float* out) const {
    return {q.data(), ldq, c.T, c.group,
            c.f16 ? static_cast<const void*>(kt16.data()) : kt.data(),
            c.f16 ? static_cast<const void*>(v16.data()) : v.data(),
            ldv, n0, c.hd, scale, out, ldo};
  }
};

inline BlockInputs make_block_inputs(const BlockCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  BlockInputs in;
  in.n0 = c.pos0 + 1;
  in.nk_max = in.n0 + c.T - 1;
  constexpr int64_t kKt = kernels::kKeyTile;
  const int64_t ldk = (in.nk_max + 5 + kKt - 1) / kKt * kKt;  // padding keys past the last, as in a cache
  in.ldq = int64_t(c.group) * c.hd + 3;
  in.ldo = int64_t(c.group) * c.hd + 5;
  in.ldv = c.hd + 7;
  in.q.resize(size_t(c.T * in.ldq));
  in.k.resize(size_t(ldk * c.hd));
  in.v.resize(size_t(ldk * in.ldv));
  for (float& x : in.q) x = nd(rng) * c.q_scale;
  for (float& x : in.k) x = nd(rng);
  for (float& x : in.v) x = nd(rng);
  if (c.f16) {
    for (float& x : in.k) x = fp16_to_fp32(fp32_to_fp16(x));
    for (float& x : in.v) x = fp16_to_fp32(fp32_to_fp16(x));
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t j = in.nk_max; j < ldk; ++j)
    for (int d = 0; d < c.hd; ++d) in.k[size_t(j * c.hd + d)] = nan;
  in.kt.resize(in.k.size());
  for (int64_t j = 0; j < ldk; ++j)
    for (int d = 0; d < c.hd; ++d)
      in.kt[size_t((j / kKt) * c.hd * kKt + d * kKt + j % kKt)] = in.k[size_t(j * c.hd + d)];
  in.kt16.resize(in.kt.size());
  in.v16.resize(in.v.size());
  for (size_t i = 0; i < in.kt.size(); ++i) in.kt16[i] = fp32_to_fp16(in.kt[i]);
  for (size_t i = 0; i < in.v.size(); ++i) in.v16[i] = fp32_to_fp16(in.v[i]);
  return in;
}

}  // namespace halfbyte::test
