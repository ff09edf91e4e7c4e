#include "model/kv_cache.hpp"

#include <cstring>

#include "halfbyte/core/error.hpp"
#include "halfbyte/core/half.hpp"
#include "kernel_table.hpp"

namespace halfbyte::model {

KvCache::KvCache(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t n_ctx, bool f16,
                 const std::string& what)
    : n_layer_(n_layer), n_head_kv_(n_head_kv), hd_(head_dim), n_ctx_(n_ctx), ldk_((n_ctx + 31) / 32 * 32),
      f16_(f16), elem_(f16 ? 2 : 4) {
  const double need = double(n_layer) * double(n_head_kv) * double(head_dim) * double(ldk_ + n_ctx) * double(elem_);
  if (need > 1e18) throw_invalid(what, ": a KV cache for n_ctx = ", n_ctx, " is too large");
  map_ = AnonMap(size_t(need), what + ": a KV cache for n_ctx = " + std::to_string(n_ctx));
}

void KvCache::store(int64_t layer, int64_t g, int64_t pos, const float* k, const float* v) {
  const size_t head = size_t(layer * n_head_kv_ + g);
  const size_t k_off = head * size_t(hd_ * ldk_);
  const size_t v_off = size_t(n_layer_ * n_head_kv_ * hd_ * ldk_) + head * size_t(n_ctx_ * hd_) + size_t(pos * hd_);
  constexpr int64_t T = kernels::kKeyTile;
  const size_t k_at = k_off + size_t((pos / T) * hd_ * T + pos % T);  // dim d at k_at + d * T
  if (f16_) {
    auto* kc = reinterpret_cast<uint16_t*>(map_.data()) + k_at;
    auto* vc = reinterpret_cast<uint16_t*>(map_.data()) + v_off;
    for (int64_t d = 0; d < hd_; ++d) kc[size_t(d * T)] = fp32_to_fp16(k[d]);
    for (int64_t d = 0; d < hd_; ++d) vc[d] = fp32_to_fp16(v[d]);
  } else {
    auto* kc = reinterpret_cast<float*>(map_.data()) + k_at;
    auto* vc = reinterpret_cast<float*>(map_.data()) + v_off;
    for (int64_t d = 0; d < hd_; ++d) kc[size_t(d * T)] = k[d];
    std::memcpy(vc, v, size_t(hd_) * 4);
  }
}

void KvCache::copy_prefix(const KvCache& src, int64_t n) {
  if (src.map_.bytes() != map_.bytes() || src.f16_ != f16_ || n < 0 || n > n_ctx_)
    throw_invalid("KV cache: cannot copy ", n, " positions between caches of different shapes");
  constexpr int64_t T = kernels::kKeyTile;
  const int64_t heads = n_layer_ * n_head_kv_;
  const uint8_t* from = src.map_.data();
  uint8_t* to = map_.data();
  for (int64_t h = 0; h < heads; ++h) {
    // K: whole tiles of T positions at once, then the first n % T lanes of the last.
    const size_t k_head = size_t(h * hd_ * ldk_) * elem_;
    const size_t full = size_t(n / T) * size_t(hd_ * T) * elem_;
    std::memcpy(to + k_head, from + k_head, full);
    if (n % T) {
      const size_t tile = k_head + full;
      for (int64_t d = 0; d < hd_; ++d)
        std::memcpy(to + tile + size_t(d * T) * elem_, from + tile + size_t(d * T) * elem_, size_t(n % T) * elem_);
    }
    // V: rows [0, n).
    const size_t v_head = (size_t(heads * hd_ * ldk_) + size_t(h * n_ctx_ * hd_)) * elem_;
    std::memcpy(to + v_head, from + v_head, size_t(n * hd_) * elem_);
  }
}

bool KvCache::has_attend_block() const noexcept { return kernels::active().attend_block[f16_ ? 1 : 0] != nullptr; }

bool KvCache::bf16_attention(bool bf16_ok) const noexcept {
  return bf16_ok && kernels::active().attend_block_bf16[f16_ ? 1 : 0] != nullptr && hd_ % 32 == 0;
}

void KvCache::attend_block(int64_t layer, int64_t g, const float* q, int64_t ldq, int T, int M, int64_t n0,
                           float scale, float* out, int64_t ldo, bool bf16_ok) const {
  const size_t head = size_t(layer * n_head_kv_ + g);
  const uint8_t* kt = map_.data() + head * size_t(hd_ * ldk_) * elem_;
  const uint8_t* v = map_.data() + (size_t(n_layer_ * n_head_kv_ * hd_ * ldk_) + head * size_t(n_ctx_ * hd_)) * elem_;
  const kernels::AttnBlockArgs a{q, ldq, T, M, kt, v, hd_, n0, int(hd_), scale, out, ldo};
  const kernels::KernelTable& t = kernels::active();
  (bf16_attention(bf16_ok) ? t.attend_block_bf16 : t.attend_block)[f16_ ? 1 : 0](a);
}

void KvCache::attend(int64_t layer, int64_t g, const float* q, int64_t ldq, int M, int64_t n_keys, float scale,
                     float* scratch, float* out, int64_t ldo) const {
  attend_keys(layer, g, q, ldq, M, 0, n_keys, scale, scratch, out, ldo, nullptr);
}

void KvCache::attend_keys(int64_t layer, int64_t g, const float* q, int64_t ldq, int M, int64_t j0, int64_t j1,
                          float scale, float* scratch, float* out, int64_t ldo, float* stats) const {
  constexpr int64_t T = kernels::kKeyTile;
  const size_t head = size_t(layer * n_head_kv_ + g);
  const uint8_t* kt = map_.data() + (head * size_t(hd_ * ldk_) + size_t(j0 / T * hd_ * T)) * elem_;
  const uint8_t* v =
      map_.data() + (size_t(n_layer_ * n_head_kv_ * hd_ * ldk_) + head * size_t(n_ctx_ * hd_) + size_t(j0 * hd_)) * elem_;
  kernels::AttnArgs a{q, ldq, M, kt, v, hd_, j1 - j0, int(hd_), scale, scratch, ldk_, out, ldo};
  a.stats = stats;
  kernels::active().attend[f16_ ? 1 : 0](a);
}

}  // namespace halfbyte::model
