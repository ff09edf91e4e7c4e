// Llama-family forward pass. Follows one token through a layer as the math is
// written (x: [n, D] activations of the n tokens in flight):
//   h = rmsnorm(x) * attn_norm; q, k, v = h Wqkv^T (+ b); rope(q, k)
//   append k, v to the cache; a = softmax(q k^T / sqrt(hd)) v  (causal, GQA)
//   x += a Wo^T
//   h = rmsnorm(x) * ffn_norm; g, u = h Wgu^T; x += (silu(g) * u) Wdown^T
// then logits = rmsnorm(x) * out_norm . Wout^T.
#include "model/llama.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>

#include "halfbyte/core/error.hpp"
#include "core/thread_pool.hpp"
#include "kernel_table.hpp"

namespace halfbyte::model {
namespace {

std::string key(const Config& c, const char* k) { return c.arch + "." + k; }

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss[4] = {};  // four partial sums: one chain of n double adds is slow
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) ss[k] += double(x[i + k]) * x[i + k];
  for (; i < n; ++i) ss[0] += double(x[i]) * x[i];
  const double sum = (ss[0] + ss[1]) + (ss[2] + ss[3]);
  const float scale = float(1.0 / std::sqrt(sum / double(n) + double(eps)));
  for (i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

// fn(t) for every token t of a batch: split across the threads for a prompt, on the
// caller for a few tokens (decoding).
constexpr int64_t kMinParallelTokens = 8;
template <class F>
void per_token(int64_t n, int n_threads, F&& fn) {
  const int64_t parts = n >= kMinParallelTokens ? n_threads : 1;
  detail::parallel_ranges(n, parts, n_threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) fn(t);
  });
}

}  // namespace

Config config_from_gguf(const io::GgufFile& f) {
  Config c;
  c.arch = f.get("general.architecture").as_string("general.architecture");
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "mistral")
    throw_error(ErrorKind::Unsupported, f.path(), ": architecture '", c.arch,
                "' is not supported (llama, mistral, qwen2)");
  auto req = [&](const char* k) {
    const int64_t v = f.get(key(c, k)).as_int(key(c, k));
    if (v <= 0 || v > (int64_t(1) << 24))
      throw_error(ErrorKind::Format, f.path(), ": ", key(c, k), " = ", v, " is out of range");
    return v;
  };
  c.n_embd = req("embedding_length");
  c.n_layer = req("block_count");
  c.n_head = req("attention.head_count");
  c.n_ff = req("feed_forward_length");
  c.n_ctx_train = req("context_length");
  c.n_head_kv = f.has(key(c, "attention.head_count_kv")) ? req("attention.head_count_kv") : c.n_head;
  c.head_dim = f.has(key(c, "attention.key_length")) ? req("attention.key_length") : c.n_embd / c.n_head;
  c.rope_dim = f.has(key(c, "rope.dimension_count")) ? req("rope.dimension_count") : c.head_dim;
  c.rope_theta = float(f.get_float(key(c, "rope.freq_base"), 10000.0));
  c.rms_eps = float(f.get_float(key(c, "attention.layer_norm_rms_epsilon"), 1e-5));
  if (c.n_head % c.n_head_kv != 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0 || c.head_dim % 2 != 0)
    throw_error(ErrorKind::Format, f.path(), ": inconsistent attention shape (heads ", c.n_head, ", kv heads ",
                c.n_head_kv, ", head dim ", c.head_dim, ", rope dim ", c.rope_dim, ")");
  if (!(c.rope_theta > 0.0f) || !(c.rms_eps > 0.0f))
    throw_error(ErrorKind::Format, f.path(), ": rope.freq_base and layer_norm_rms_epsilon must be > 0");
  // llama.cpp rotates adjacent pairs for llama/mistral GGUFs (their converter
  // permutes Q and K), halves ("NeoX" style) for qwen2. Loaders of HF weights (kept
  // in HF's half layout, unpermuted) say so with halfbyte.rope_neox.
  c.rope_neox = f.has("halfbyte.rope_neox") ? f.get("halfbyte.rope_neox").as_bool("halfbyte.rope_neox")
                                            : c.arch == "qwen2";
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  const io::GgufTensorInfo& emb = f.tensor("token_embd.weight");
  if (emb.ne.size() != 2 || emb.ne[0] != c.n_embd)
    throw_error(ErrorKind::Format, f.path(), ": token_embd.weight should be [n_vocab, ", c.n_embd, "]");
  c.n_vocab = emb.ne[1];
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  return c;
}

Llama::Llama(const io::GgufFile& f, const Config& c, int64_t n_ctx, int64_t n_batch, int n_threads, bool float_matmul,
             const quant::Format* float_to, bool kv_f16, int n_seq, const std::function<bool(float)>& progress)
    : file_(f), c_(c), n_ctx_(n_ctx), n_batch_(n_batch), n_threads_(n_threads), float_(float_matmul) {
  const int64_t D = c.n_embd, hd = c.head_dim, H = c.n_head, Hkv = c.n_head_kv;
  tok_embd_ = &f.tensor("token_embd.weight");
  auto t = [&](int l, const char* name) -> const io::GgufTensorInfo* {
    return &f.tensor("blk." + std::to_string(l) + "." + name);
  };
  auto check_rows = [&](const Linear& lin, int64_t rows, const std::string& what) {
    if (lin.n_out() != rows)
      throw_error(ErrorKind::Format, f.path(), ": ", what, " has ", lin.n_out(), " output rows, expected ", rows);
  };
  for (int l = 0; l < c.n_layer; ++l) {
    LayerWeights w;
    const std::string at = "layer " + std::to_string(l);
    w.attn_norm = tensor_vector(f, *t(l, "attn_norm.weight"), D);
    w.ffn_norm = tensor_vector(f, *t(l, "ffn_norm.weight"), D);
    w.wqkv = Linear::from_gguf(f, {t(l, "attn_q.weight"), t(l, "attn_k.weight"), t(l, "attn_v.weight")}, D, float_to);
    check_rows(w.wqkv, (H + 2 * Hkv) * hd, at + " attn_q/k/v");
    if (c.qkv_bias) {
      for (const char* b : {"attn_q.bias", "attn_k.bias", "attn_v.bias"}) {
        const auto* bt = t(l, b);
        const auto v = tensor_vector(f, *bt, bt->numel());
        w.wqkv.bias.insert(w.wqkv.bias.end(), v.begin(), v.end());
      }
      if (int64_t(w.wqkv.bias.size()) != w.wqkv.n_out())
        throw_error(ErrorKind::Format, f.path(), ": ", at, " q/k/v biases do not match the projections");
    }
    w.wo = Linear::from_gguf(f, {t(l, "attn_output.weight")}, H * hd, float_to);
    check_rows(w.wo, D, at + " attn_output");
    w.w_gate_up = Linear::from_gguf(f, {t(l, "ffn_gate.weight"), t(l, "ffn_up.weight")}, D, float_to);
    check_rows(w.w_gate_up, 2 * c.n_ff, at + " ffn_gate/up");
    w.w_down = Linear::from_gguf(f, {t(l, "ffn_down.weight")}, c.n_ff, float_to);
    check_rows(w.w_down, D, at + " ffn_down");
    for (const Linear* lin : {&w.wqkv, &w.wo, &w.w_gate_up, &w.w_down})
      if (lin->requantized_parts()) requantized_[lin->requantized_from()] += lin->requantized_parts();
    layers_.push_back(std::move(w));
    const std::string b = "blk." + std::to_string(l) + ".";
    layer_inputs_.push_back({std::vector<std::string>{b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"},
                             std::vector<std::string>{b + "attn_output.weight"},
                             std::vector<std::string>{b + "ffn_gate.weight", b + "ffn_up.weight"},
                             std::vector<std::string>{b + "ffn_down.weight"}});
    // Reading the norms mapped the page-cache folios around them: release the
    // layer's tensors again so that the mapping's resident part stays small.
    const std::string prefix = "blk." + std::to_string(l) + ".";
    for (const io::GgufTensorInfo& x : f.tensors())
      if (x.name.compare(0, prefix.size(), prefix) == 0) f.release_pages(x);
    if (progress && !progress(float(l + 1) / float(c.n_layer + 1)))
      throw_error(ErrorKind::Runtime, f.path(), ": load cancelled");
  }
  output_name_ = c.tied_output ? "token_embd.weight" : "output.weight";
  out_norm_ = tensor_vector(f, f.tensor("output_norm.weight"), D);
  output_ = Linear::from_gguf(f, {c.tied_output ? tok_embd_ : &f.tensor("output.weight")}, D, float_to);
  check_rows(output_, c.n_vocab, "output");
  if (output_.requantized_parts()) requantized_[output_.requantized_from()] += output_.requantized_parts();

  // Everything but the token embedding has been copied out of the file: release
  // what reads since the layers' own release mapped again (folios around a norm).
  for (const io::GgufTensorInfo& t : f.tensors())
    if (&t != tok_embd_) f.release_pages(t);
  if (n_seq < 1) throw_invalid(f.path(), ": n_seq must be >= 1, got ", n_seq);
  kv_.reserve(size_t(n_seq));
  for (int s = 0; s < n_seq; ++s) kv_.emplace_back(c.n_layer, Hkv, hd, n_ctx, kv_f16, f.path());
  seq0_.assign(size_t(n_batch), 0);
  const size_t B = size_t(n_batch);
  const size_t sizes[] = {B * size_t(D),                     // x
                          B * size_t(D),                     // xn
                          B * size_t((H + 2 * Hkv) * hd),    // qkv
                          B * size_t(H * hd),                // att
                          B * size_t(D),                     // tmp
                          B * size_t(2 * c.n_ff),            // gu
                          B * size_t(c.n_ff),                // act
                          size_t(std::max(1, n_threads)) * kv_[0].scratch_floats(int(H / Hkv)),  // scores
                          B * size_t(c.rope_dim)};           // rope_cs
  size_t total = 0;
  for (size_t n : sizes) total += n;
  scratch_ = ScratchArena(total, std::size(sizes), f.path() + ": scratch for n_batch = " + std::to_string(n_batch));
  float** arrays[] = {&x_, &xn_, &qkv_, &att_, &tmp_, &gu_, &act_, &scores_, &rope_cs_};
  for (size_t i = 0; i < std::size(sizes); ++i) *arrays[i] = scratch_.take(sizes[i]);
  for (int64_t i = 0; i < c.rope_dim / 2; ++i)
    inv_freq_.push_back(float(std::pow(double(c.rope_theta), -2.0 * double(i) / double(c.rope_dim))));
}

void Llama::memory(MemoryReport& r) const {
  const auto floats = [](const std::vector<float>& v) { return uint64_t(v.size() * sizeof(float)); };
  const auto linear = [&](const Linear& l) { return uint64_t(l.nbytes()) + floats(l.bias); };
  uint64_t owned = floats(out_norm_) + linear(output_);
  for (const LayerWeights& w : layers_)
    owned += floats(w.attn_norm) + floats(w.ffn_norm) + linear(w.wqkv) + linear(w.wo) + linear(w.w_gate_up) +
             linear(w.w_down);
  r.weights_owned += owned;
  r.weights_mapped += tok_embd_->nbytes;
  const auto resident = [](const AnonMap& m) { return resident_bytes(m.data(), m.bytes()).value_or(m.bytes()); };
  for (const KvCache& kv : kv_) {
    r.kv_cache += kv.bytes();
    r.kv_cache_resident += resident(kv.map());
  }
  r.scratch += scratch_.map().bytes();
  r.scratch_resident += resident(scratch_.map());
}

void Llama::record(const std::vector<std::string>& names, const float* x, int64_t n, int64_t ld, int64_t cols) {
  quant::ImatrixEntry& first = stats_->entries[names[0]];
  quant::accumulate(first, names[0], x, n, ld, cols, stats_->covariance);
  // The matrices reading the same input share its statistics (cov: one copy).
  for (size_t i = 1; i < names.size(); ++i) stats_->entries[names[i]] = first;
}

void Llama::embed(const int32_t* tokens, int64_t n, float* x) const {
  for (int64_t i = 0; i < n; ++i) tensor_row_to_float(file_, *tok_embd_, tokens[i], x + i * c_.n_embd);
}

void Llama::attention(int layer, int64_t n, const int32_t* seq, const int64_t* pos) {
  const int64_t H = c_.n_head, Hkv = c_.n_head_kv, hd = c_.head_dim, group = H / Hkv;
  const int64_t qkv_w = (H + 2 * Hkv) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  per_token(n, n_threads_, [&](int64_t t) {  // append this batch's keys and values
    for (int64_t g = 0; g < Hkv; ++g) {
      const float* k = qkv_ + t * qkv_w + (H + g) * hd;
      kv_[size_t(seq[t])].store(layer, g, pos[t], k, k + Hkv * hd);
    }
  });
  // Runs of tokens: where the kernels have prompt attention (attend_block), up to
  // kAttnChunk consecutive tokens of one sequence at consecutive positions with at
  // least kAttnMinRows query rows in all; else (decoding, short runs) one token.
  // Rounded to bf16 (amx's tiles, avx512's vdpbf16ps) only where the layer's products
  // are not fp32 already (int8 activations or 16-bit weights); precision "float" and
  // f32 layers keep fp32 (the vector ISAs' attend_block, the same bits as attend per
  // token). In bf16, every run goes to attend_block, single tokens too, and decoding
  // does not split a head's keys across threads: a token's result then does not
  // depend on the batch it came in (which runs, which split).
  const bool tiles = kv_[0].has_attend_block();
  const bool bf16 = kv_[0].bf16_attention(!float_ && !layers_[size_t(layer)].wqkv.f32_weights());
  runs_.clear();
  for (int64_t t = 0; t < n;) {
    int64_t t1 = t + 1;
    if (tiles)
      while (t1 < n && t1 - t < kAttnChunk && seq[t1] == seq[t] && pos[t1] == pos[t1 - 1] + 1) ++t1;
    if (!bf16 && (t1 - t) * group < kAttnMinRows) t1 = t + 1;
    runs_.push_back({t, t1 - t});
    t = t1;
  }
  // One job per run and KV head: the `group` query heads that share the head see the
  // same keys (causal: up to each token), one kernel call for all of them.
  const int64_t jobs = int64_t(runs_.size()) * Hkv;
  const size_t scratch = kv_[0].scratch_floats(int(group));
  if (!bf16 && split_decode(jobs, pos)) {
    attention_split(layer, seq, pos, jobs, scratch);
    return;
  }
  detail::parallel_tasks(jobs, n_threads_, [&](int64_t job, int slot) {
    const auto [t, len] = runs_[size_t(job / Hkv)];
    const int64_t g = job % Hkv;
    const KvCache& kv = kv_[size_t(seq[t])];
    const float* q = qkv_ + t * qkv_w + g * group * hd;
    float* out = att_ + t * H * hd + g * group * hd;
    if (len > 1 || bf16) {
      kv.attend_block(layer, g, q, qkv_w, int(len), int(group), pos[t] + 1, scale, out, H * hd, bf16);
      return;
    }
    float* sc = scores_ + size_t(slot) * scratch;
    kv.attend(layer, g, q, hd, int(group), pos[t] + 1, scale, sc, out, hd);
  });
}

bool Llama::split_decode(int64_t jobs, const int64_t* pos) const {
  if (n_threads_ < 2 || jobs % n_threads_ == 0 || jobs >= 2 * int64_t(n_threads_)) return false;
  for (const AttnRun& r : runs_)
    if (r.len != 1 || pos[r.t] + 1 < kSplitKeys) return false;
  return true;
}

// Each (token, KV head) job's keys in n_threads ranges of whole key tiles; per range
// the kernel's normalised output o_r and its rows' max m_r and sum l_r; combined as
// sum_r w_r o_r / sum_r w_r with w_r = l_r exp(m_r - max_r m_r).
void Llama::attention_split(int layer, const int32_t* seq, const int64_t* pos, int64_t jobs, size_t scratch) {
  const int64_t H = c_.n_head, Hkv = c_.n_head_kv, hd = c_.head_dim, group = H / Hkv;
  const int64_t qkv_w = (H + 2 * Hkv) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  const int64_t parts = n_threads_;
  part_out_.resize(size_t(jobs * parts * group * hd));
  part_stats_.resize(size_t(jobs * parts * group * 2));
  detail::parallel_tasks(jobs * parts, n_threads_, [&](int64_t task, int slot) {
    const int64_t job = task / parts, p = task % parts;
    const int64_t t = runs_[size_t(job / Hkv)].t, g = job % Hkv;
    const int64_t n_keys = pos[t] + 1, tiles = (n_keys + kernels::kKeyTile - 1) / kernels::kKeyTile;
    const int64_t j0 = std::min(n_keys, tiles * p / parts * kernels::kKeyTile);
    const int64_t j1 = std::min(n_keys, tiles * (p + 1) / parts * kernels::kKeyTile);
    float* o = part_out_.data() + task * group * hd;
    float* st = part_stats_.data() + task * group * 2;
    if (j1 <= j0) {  // (no keys: weight 0)
      for (int64_t r = 0; r < group; ++r) st[2 * r] = -INFINITY, st[2 * r + 1] = 0.0f;
      return;
    }
    kv_[size_t(seq[t])].attend_keys(layer, g, qkv_ + t * qkv_w + g * group * hd, hd, int(group), j0, j1, scale,
                                    scores_ + size_t(slot) * scratch, o, hd, st);
  });
  for (int64_t job = 0; job < jobs; ++job) {
    const int64_t t = runs_[size_t(job / Hkv)].t, g = job % Hkv;
    for (int64_t r = 0; r < group; ++r) {
      float mx = -INFINITY;
      for (int64_t p = 0; p < parts; ++p) mx = std::max(mx, part_stats_[size_t(((job * parts + p) * group + r) * 2)]);
      float* out = att_ + t * H * hd + (g * group + r) * hd;
      std::fill(out, out + hd, 0.0f);
      float wsum = 0.0f;
      for (int64_t p = 0; p < parts; ++p) {
        const float* st = part_stats_.data() + ((job * parts + p) * group + r) * 2;
        if (st[1] == 0.0f) continue;
        const float w = st[1] * std::exp(st[0] - mx);
        const float* o = part_out_.data() + ((job * parts + p) * group + r) * hd;
        for (int64_t d = 0; d < hd; ++d) out[d] += w * o[d];
        wsum += w;
      }
      for (int64_t d = 0; d < hd; ++d) out[d] /= wsum;
    }
  }
}

void Llama::forward(const int32_t* tokens, int64_t n, int64_t pos, bool all_logits, float* logits) {
  if (n <= 0 || n > n_batch_) throw_invalid("forward: batch of ", n, " tokens (1..", n_batch_, ")");
  pos_buf_.resize(size_t(n));
  rows_buf_.clear();
  for (int64_t t = 0; t < n; ++t) {
    pos_buf_[size_t(t)] = pos + t;
    if (all_logits || t == n - 1) rows_buf_.push_back(t);
  }
  forward(tokens, seq0_.data(), pos_buf_.data(), n, rows_buf_.data(), int64_t(rows_buf_.size()), logits);
}

void Llama::forward(const int32_t* tokens, const int32_t* seq, const int64_t* pos, int64_t n,
                    const int64_t* logit_rows, int64_t n_logits, float* logits) {
  const int64_t D = c_.n_embd, H = c_.n_head, Hkv = c_.n_head_kv, hd = c_.head_dim, F = c_.n_ff;
  const int64_t qkv_w = (H + 2 * Hkv) * hd, rd = c_.rope_dim;
  const auto silu_mul = kernels::active().silu_mul;
  if (n <= 0 || n > n_batch_) throw_invalid("forward: batch of ", n, " tokens (1..", n_batch_, ")");
  float* x = x_;
  embed(tokens, n, x);
  // cos/sin per token and frequency, shared by all layers and heads.
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < rd / 2; ++i) {
      const float a = float(pos[t]) * inv_freq_[size_t(i)];
      rope_cs_[t * rd + 2 * i] = std::cos(a);
      rope_cs_[t * rd + 2 * i + 1] = std::sin(a);
    }
  auto rope = [&](float* v, int64_t t) {
    const float* cs = rope_cs_ + t * rd;
    for (int64_t i = 0; i < rd / 2; ++i) {
      const int64_t a = c_.rope_neox ? i : 2 * i, b = c_.rope_neox ? i + rd / 2 : 2 * i + 1;
      const float x0 = v[a], x1 = v[b], c = cs[2 * i], s = cs[2 * i + 1];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  };
  for (int l = 0; l < c_.n_layer; ++l) {
    const LayerWeights& w = layers_[size_t(l)];
    per_token(n, n_threads_, [&](int64_t t) {  // the previous layer's residual, then this one's norm
      if (l > 0)
        for (int64_t i = 0; i < D; ++i) x[t * D + i] += tmp_[t * D + i];
      rmsnorm(x + t * D, w.attn_norm.data(), D, c_.rms_eps, xn_ + t * D);
    });
    if (stats_) record(layer_inputs_[size_t(l)][0], xn_, n, D, D);
    w.wqkv.forward(xn_, n, D, qkv_, qkv_w, n_threads_, float_);
    per_token(n, n_threads_, [&](int64_t t) {
      for (int64_t h = 0; h < H + Hkv; ++h) rope(qkv_ + t * qkv_w + h * hd, t);
    });
    attention(l, n, seq, pos);
    if (stats_) record(layer_inputs_[size_t(l)][1], att_, n, H * hd, H * hd);
    w.wo.forward(att_, n, H * hd, tmp_, D, n_threads_, float_);
    per_token(n, n_threads_, [&](int64_t t) {
      for (int64_t i = 0; i < D; ++i) x[t * D + i] += tmp_[t * D + i];
      rmsnorm(x + t * D, w.ffn_norm.data(), D, c_.rms_eps, xn_ + t * D);
    });
    if (stats_) record(layer_inputs_[size_t(l)][2], xn_, n, D, D);
    w.w_gate_up.forward(xn_, n, D, gu_, 2 * F, n_threads_, float_);
    per_token(n, n_threads_, [&](int64_t t) {
      const float* g = gu_ + t * 2 * F;
      silu_mul(g, g + F, act_ + t * F, F);
    });
    if (stats_) record(layer_inputs_[size_t(l)][3], act_, n, F, F);
    w.w_down.forward(act_, n, F, tmp_, D, n_threads_, float_);
  }
  if (c_.n_layer > 0)
    per_token(n, n_threads_, [&](int64_t t) {  // the last layer's residual
      for (int64_t i = 0; i < D; ++i) x[t * D + i] += tmp_[t * D + i];
    });
  // The rows whose logits are wanted, gathered (in order) at the start of xn.
  for (int64_t i = 0; i < n_logits; ++i)
    rmsnorm(x + logit_rows[i] * D, out_norm_.data(), D, c_.rms_eps, xn_ + i * D);
  if (n_logits == 0) return;
  if (stats_) record({output_name_}, xn_, n_logits, D, D);
  output_.forward(xn_, n_logits, D, logits, c_.n_vocab, n_threads_, float_);
}

}  // namespace halfbyte::model
