// The KV cache of a decoder, fp32 or fp16, and attention over it. Internal.
//
// Layout per layer and KV head: K transposed in tiles of 32 positions,
// [ldk / 32][head_dim][32] (ldk = n_ctx rounded up to 32: keys along the attention
// kernels' vector lanes), and V as [n_ctx][head_dim]. The memory is an anonymous
// mapping: zero until written, and resident only as far as the context has been
// filled (a K tile of 64 fp16 dims is one 4 KiB page; untiled, the first key would
// touch every page of K).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/memory_map.hpp"

namespace halfbyte::model {

class KvCache {
 public:
  KvCache() = default;
  // Throws Error(InvalidArgument) naming `what` if the cache would exceed physical memory.
  KvCache(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t n_ctx, bool f16, const std::string& what);

  bool f16() const noexcept { return f16_; }
  size_t bytes() const noexcept { return map_.bytes(); }
  const AnonMap& map() const noexcept { return map_; }
  void discard() noexcept { map_.discard(); }  // contents lost; memory back to the system
  // Copies positions [0, n) of every layer and head from `src` (same shape).
  void copy_prefix(const KvCache& src, int64_t n);

  // Stores key k and value v ([head_dim] each) of KV head g at position pos.
  void store(int64_t layer, int64_t g, int64_t pos, const float* k, const float* v);

  // out[m] = softmax(scale * q[m] . K[0..n_keys)) V for M query rows of KV head g
  // (row m at q + m * ldq, out + m * ldo). scratch: scratch_floats(M) floats.
  void attend(int64_t layer, int64_t g, const float* q, int64_t ldq, int M, int64_t n_keys, float scale,
              float* scratch, float* out, int64_t ldo) const;
  // The same over keys [j0, j1) (j0 a multiple of kernels::kKeyTile), and per row its
  // largest score and sum of exponentials in stats (kernel_table.hpp's AttnArgs):
  // ranges of one row combine into its attention over all of them.
  void attend_keys(int64_t layer, int64_t g, const float* q, int64_t ldq, int M, int64_t j0, int64_t j1,
                   float scale, float* scratch, float* out, int64_t ldo, float* stats) const;
  size_t scratch_floats(int M) const noexcept { return size_t(M) * size_t(ldk_); }
  // Causal attention of T consecutive tokens (the first at position n0 - 1, all stored)
  // for the M query heads of KV head g: token i sees keys [0, n0 + i); query row (i, h)
  // at q + i ldq + h head_dim, output likewise at out + i ldo. Only where the kernel
  // table has attend_block (has_attend_block(): the vector ISAs), in fp32; rounded to
  // bf16 (amx's tiles, avx512's vdpbf16ps: KernelTable::attend_block_bf16) where
  // bf16_ok (the products are not fp32 already), the table has it and head_dim % 32 == 0.
  bool has_attend_block() const noexcept;
  // Whether attend_block rounds to bf16 given bf16_ok. Then every token's attention
  // must go through it (runs of one token too: a token's bits then do not depend on
  // how a batch is cut into runs).
  bool bf16_attention(bool bf16_ok) const noexcept;
  void attend_block(int64_t layer, int64_t g, const float* q, int64_t ldq, int T, int M, int64_t n0, float scale,
                    float* out, int64_t ldo, bool bf16_ok) const;

 private:
  int64_t n_layer_ = 0, n_head_kv_ = 0, hd_ = 0, n_ctx_ = 0, ldk_ = 0;
  bool f16_ = false;
  size_t elem_ = 4;
  AnonMap map_;  // K of all layers, then V of all layers
};

}  // namespace halfbyte::model
