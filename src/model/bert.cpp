// BERT forward pass over packed sequences (x: [T, D], the T tokens of all
// sequences back to back; post-LayerNorm blocks):
//   x = LN(word[id] + position[p] + token_type[t])         p: position within its sequence
//                                                          (DistilBERT: no token types)
//   per layer:
//     q, k, v = x Wqkv^T + b
//     a = softmax(q k^T / sqrt(hd)) v    per sequence and head: tokens see only their own sequence
//                                      (v without its bias: Wo bv is folded into bo at load)
//     x = LN(x + a Wo^T + bo)
//     x = LN(x + gelu(x Wup^T + bup) Wdown^T + bdown)   gelu with erf
// The projections and the feed-forward layers are one GEMM with M = T for the
// whole batch; nothing is padded.
//
// Quantized layers and int8 activations: the LayerNorm outputs (inputs of Wqkv
// and Wup) carry a few outlier channels, and quantizing them per 32-block to int8
// costs most of the accuracy (all-MiniLM-L6-v2 q8_0, worst cosine to torch over a
// varied set: 0.9977 all-int8, 0.9993 with those two in float, 0.9995 all float).
// MatmulPrecision::Auto therefore runs those two with ops::Precision::NoInt8 (bf16
// tiles on AMX, int16 activations on avx2, else float), except where the ISA has the
// asymmetric int8 kernel (avx512 without AMX): there Wup, smoothed at load, and
// Wqkv run on it, Wqkv's [CLS] rows recomputed on NoInt8 (project_qkv, and the
// constructor's notes); the other layers run asymmetric int8 too.
#include "model/bert.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include "halfbyte/core/error.hpp"
#include "core/thread_pool.hpp"
#include "kernel_table.hpp"

namespace halfbyte::model {
namespace {

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// transformers' BertModel / BertForSequenceClassification.
constexpr EncoderNames kBert{
    "bert.", "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm", "encoder.layer.",
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm",
    "pooler.dense", true, true, "classifier", "BertForSequenceClassification"};
// transformers' DistilBertModel / DistilBertForSequenceClassification.
constexpr EncoderNames kDistilBert{
    "distilbert.", "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", nullptr,
    "embeddings.LayerNorm", "transformer.layer.", "attention.q_lin", "attention.k_lin", "attention.v_lin",
    "attention.out_lin", "sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm",
    "pre_classifier", false, false, "classifier", "DistilBertForSequenceClassification"};

}  // namespace

// The ISA in use has the asymmetric int8 GEMM for weights of format f, and no bf16
// tiles (AMX) that would take the layer's GEMMs whatever their precision.
static bool asym_kernel(const quant::Format& f) {
  const kernels::KernelTable& kt = kernels::active();
  const kernels::Family fam = kernels::family_of(f);
  return kt.quantize_act_asym && kt.gemm_int_asym[fam][0] && kt.gemm_int_asym[fam][1] && !kt.gemm_tile[fam][0] &&
         !kt.gemm_tile[fam][1];
}

const EncoderNames& encoder_names(const std::string& arch) {
  if (arch == "bert") return kBert;
  if (arch == "distilbert") return kDistilBert;
  throw_error(ErrorKind::Unsupported, "encoder: architecture '", arch, "' is not supported (bert, distilbert)");
}

Bert::Bert(const io::GgufFile& f, const EncoderConfig& c, const std::string& prefix, const quant::Format* float_to,
           MatmulPrecision precision, int n_threads, const EncoderNames* names)
    : file_(f), c_(c), n_threads_(n_threads) {
  // Auto: asymmetric int8 activations where the ISA has that kernel (avx512), else
  // int8. The LayerNorm-fed layers: no int8 activations (bf16 tiles on AMX, else
  // int16 activations on avx2/avx512, else the float path), except where the ISA has
  // the asymmetric kernel (forward()): query/key/value on it (each text's first
  // token on int16), the FFN's first layer too when it was smoothed at load.
  auto_precision_ = precision == MatmulPrecision::Auto;
  other_precision_ = precision == MatmulPrecision::Float ? ops::Precision::Float
                     : precision == MatmulPrecision::Int ? ops::Precision::Int
                                                         : ops::Precision::Int8Asym;
  ln_precision_ = precision == MatmulPrecision::Int     ? ops::Precision::Int
                  : precision == MatmulPrecision::Float ? ops::Precision::Float
                                                        : ops::Precision::NoInt8;
  const int64_t D = c.n_embd, F = c.n_ff;
  // A tensor by its HF name; LayerNorm weights may be called gamma/beta (old checkpoints).
  auto get = [&](const std::string& name) -> const io::GgufTensorInfo& {
    const io::GgufTensorInfo* t = f.find_tensor(prefix + name);
    const auto alias = [&](const char* from, const char* to) {
      const size_t at = name.rfind(from);
      if (!t && at != std::string::npos && at + std::string(from).size() == name.size())
        t = f.find_tensor(prefix + name.substr(0, at) + to);
    };
    alias(".weight", ".gamma");
    alias(".bias", ".beta");
    if (!t)
      throw_error(ErrorKind::Format, f.path(), ": tensor '", prefix + name, "' is missing",
                  f.format() == "gguf" ? "" : " (or not of dtype F32, F16 or BF16)");
    return *t;
  };
  auto vec = [&](const std::string& name, int64_t n) { return tensor_vector(f, get(name), n); };
  auto table = [&](const std::string& name, int64_t rows) -> const io::GgufTensorInfo& {
    const io::GgufTensorInfo& t = get(name);
    if (t.ne.size() != 2 || t.ne[0] != D || t.ne[1] != rows)
      throw_error(ErrorKind::Format, f.path(), ": tensor '", t.name, "' should have shape [", rows, ", ", D,
                  "] (", f.format() == "gguf" ? "the GGUF metadata" : "config.json", ")");
    return t;
  };
  // The FFN's first layer is smoothed (Linear::from_gguf's act_max) when it is quantized
  // here and the ISA has the asymmetric int8 kernel: each input channel's largest |x|
  // estimated from the LayerNorm that feeds it as |beta| + 8 |gamma|, no calibration
  // data (bench/encoder_int8_sim.py measures the choice on all-MiniLM-L6-v2). The
  // query/key/value layer is not smoothed: smoothed, a cross-encoder's scores moved
  // twice as far from torch's (docs/encoders.md).
  const bool smooth = precision == MatmulPrecision::Auto && float_to && asym_kernel(*float_to);
  std::vector<float> act_max;
  const auto ln_estimate = [&](const std::vector<float>& gamma, const std::vector<float>& beta) -> const float* {
    if (!smooth) return nullptr;
    act_max.resize(gamma.size());
    for (size_t i = 0; i < gamma.size(); ++i) act_max[i] = std::fabs(beta[i]) + 8.0f * std::fabs(gamma[i]);
    return act_max.data();
  };
  auto linear = [&](const std::vector<std::string>& names, int64_t n_in, int64_t n_out,
                    const float* smooth_by = nullptr) {
    std::vector<const io::GgufTensorInfo*> parts;
    for (const std::string& n : names) parts.push_back(&get(n + ".weight"));
    Linear l = Linear::from_gguf(f, parts, n_in, float_to, smooth_by);
    if (l.n_out() != n_out)
      throw_error(ErrorKind::Format, f.path(), ": tensor '", parts[0]->name, "'", names.size() > 1 ? " (and its pair)" : "",
                  " should have ", n_out / int64_t(names.size()), " rows, has ", parts[0]->ne[1]);
    for (const std::string& n : names) {
      const std::vector<float> b = vec(n + ".bias", n_out / int64_t(names.size()));
      l.bias.insert(l.bias.end(), b.begin(), b.end());
    }
    return l;
  };

  const EncoderNames& nm = names ? *names : encoder_names(c.arch);
  const std::string ln_w = ".weight", ln_b = ".bias";
  word_emb_ = &table(nm.word_emb, c.n_vocab);
  {  // a type this version cannot read fails here, not inside embed()'s parallel loop
    std::vector<float> row(static_cast<size_t>(D));
    tensor_row_to_float(f, *word_emb_, 0, row.data());
  }
  const io::GgufTensorInfo& pos = table(nm.pos_emb, c.n_positions);
  pos_emb_.resize(size_t(c.n_positions * D));
  for (int64_t r = 0; r < c.n_positions; ++r) tensor_row_to_float(f, pos, r, pos_emb_.data() + r * D);
  if (nm.type_emb) {
    const io::GgufTensorInfo& type = table(nm.type_emb, c.n_types);
    type_emb_.resize(size_t(c.n_types * D));
    for (int64_t r = 0; r < c.n_types; ++r) tensor_row_to_float(f, type, r, type_emb_.data() + r * D);
  }
  emb_ln_w_ = vec(nm.emb_ln + ln_w, D);
  emb_ln_b_ = vec(nm.emb_ln + ln_b, D);

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = nm.layer + std::to_string(l) + ".";
    BertLayer w;
    w.qkv = linear({p + nm.q, p + nm.k, p + nm.v}, D, 3 * D);
    w.attn_out = linear({p + nm.attn_out}, D, D);
    // The value bias moves into the attention output's: softmax weights sum to one,
    // so attention adds bv to every context row, and Wo (ctx + bv) + bo =
    // Wo ctx + (Wo bv + bo). Attention then reads V in place (attention()).
    {
      const std::vector<float> bv(w.qkv.bias.begin() + 2 * D, w.qkv.bias.end());
      std::vector<float> wbv(static_cast<size_t>(D));
      w.attn_out.forward(bv.data(), 1, D, wbv.data(), D, 1, ops::Precision::Float, 0, false);
      for (int64_t i = 0; i < D; ++i) w.attn_out.bias[size_t(i)] += wbv[size_t(i)];
    }
    w.ln1_w = vec(p + nm.ln1 + ln_w, D);
    w.ln1_b = vec(p + nm.ln1 + ln_b, D);
    w.up = linear({p + nm.up}, D, F, ln_estimate(w.ln1_w, w.ln1_b));
    w.down = linear({p + nm.down}, F, D);
    w.ln2_w = vec(p + nm.ln2 + ln_w, D);
    w.ln2_b = vec(p + nm.ln2 + ln_b, D);
    layers_.push_back(std::move(w));
  }
}

namespace {

// Rows (tokens) from which the embedding and LayerNorm passes run on all threads
// (ops::matmul splits a GELU pass by its own measure: it costs ~10x more per value).
constexpr int64_t kMinParallelRows = 64;

}  // namespace

void Bert::embed(const PackedBatch& b, float* x) const {
  const int64_t D = c_.n_embd, T = b.n_tokens();
  // Checked first (no exception may leave the parallel loop), each token's position kept.
  std::vector<int64_t> pos(static_cast<size_t>(T));
  for (int64_t s = 0; s < b.n_seqs(); ++s)
    for (int64_t t = b.start[size_t(s)]; t < b.start[size_t(s) + 1]; ++t) {
      const int32_t id = b.ids[size_t(t)], type = b.types[size_t(t)];
      const int64_t p = pos[size_t(t)] = t - b.start[size_t(s)];
      if (id < 0 || id >= c_.n_vocab) throw_invalid("encoder: token id ", id, " is outside the vocabulary of ", c_.n_vocab);
      if (c_.n_types > 0 && (type < 0 || type >= c_.n_types))
        throw_invalid("encoder: token type ", type, " is outside [0, ", c_.n_types, ")");
      if (p >= c_.n_positions)
        throw_invalid("encoder: a sequence of more than ", c_.n_positions, " tokens (max_position_embeddings)");
    }
  const int parts = n_threads_ > 1 && T >= kMinParallelRows ? n_threads_ : 1;
  detail::parallel_ranges(T, parts, n_threads_, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t id = b.ids[size_t(t)], type = b.types[size_t(t)];
      float* row = x + t * D;
      tensor_row_to_float(file_, *word_emb_, id, row);
      const float* pe = pos_emb_.data() + pos[size_t(t)] * D;
      if (type_emb_.empty()) {  // DistilBERT: token types are ignored
        for (int64_t i = 0; i < D; ++i) row[i] += pe[i];
      } else {
        const float* te = type_emb_.data() + int64_t(type) * D;
        for (int64_t i = 0; i < D; ++i) row[i] += pe[i] + te[i];
      }
      kernels::active().add_layer_norm(row, nullptr, nullptr, D, emb_ln_w_.data(), emb_ln_b_.data(), c_.ln_eps);
    }
  });
}

namespace {

// out[d] = x[d] + bias[d], n values (vectorizable: no aliasing).
void add_row(const float* __restrict x, const float* __restrict bias, float* __restrict out, int64_t n) {
  for (int64_t d = 0; d < n; ++d) out[d] = x[d] + bias[d];
}

constexpr int64_t kPrefetchRows = 4;

}  // namespace

void Bert::attention(const PackedBatch& b, const float* qkv, const float* bq, float* ctx) const {
  const int64_t D = c_.n_embd, H = c_.n_head, hd = D / H, W = 3 * D, S = b.n_seqs();
  const float scale = 1.0f / std::sqrt(float(hd));
  const auto attend = kernels::active().attend[0];  // fp32 keys and values
  const auto pack_keys = kernels::active().pack_keys;
  int64_t max_len = 0;
  for (int64_t s = 0; s < S; ++s) max_len = std::max(max_len, b.start[size_t(s) + 1] - b.start[size_t(s)]);
  // A job: one text and a block of its heads, whose rows of qkv it reads front to
  // back (a head at a time would read 3 x hd floats per row) for Q, then, from
  // cache, K head by head into the kernel's tiles (the ISA's pack_keys transposes
  // 16 keys at a time). Whole texts when there are enough of them to share among
  // the threads, else the heads split.
  const int64_t split = std::min<int64_t>(H, (4 * int64_t(n_threads_) + S - 1) / S);
  const int64_t hb = (H + split - 1) / split, blocks = (H + hb - 1) / hb, jobs = S * blocks;
  // Per thread: the block's Q with its bias [n][hb hd], each head's K in the
  // kernel's tiled layout ([tile of 32 keys][hd][32]), scores [n][lds]. V is read
  // in place.
  constexpr int64_t kTile = kernels::kKeyTile;
  const int64_t lds_max = round_up(std::max<int64_t>(max_len, 1), kTile);
  const size_t per_thread = size_t(max_len * hb * hd + hb * hd * lds_max + max_len * lds_max);
  const int threads = int(std::max<int64_t>(1, std::min<int64_t>(n_threads_, jobs)));
  // (Not zero-filled: every element a job reads it has written first.)
  const std::unique_ptr<float[]> scratch(new float[per_thread * size_t(threads)]);
  detail::parallel_tasks(jobs, threads, [&](int64_t job, int slot) {
    const int64_t s = job / blocks, h0 = job % blocks * hb, nh = std::min(hb, H - h0);
    const int64_t t0 = b.start[size_t(s)], n = b.start[size_t(s) + 1] - t0, lds = round_up(n, kTile);
    float* q = scratch.get() + size_t(slot) * per_thread;
    float* kt = q + n * nh * hd;  // head i's tiles at kt + i hd lds
    float* sc = kt + nh * hd * lds;
    const int64_t ldq = nh * hd;
    for (int64_t j = 0; j < n; ++j) {
      const float* row = qkv + (t0 + j) * W + h0 * hd;
      // Rows a few ahead asked for now: they were written by the GEMM's threads
      // (likely the other core's cache) and are 3 D floats apart.
      if (j + kPrefetchRows < n)
        for (int64_t i = 0; i < ldq; i += 16) {
          __builtin_prefetch(row + kPrefetchRows * W + i);
          __builtin_prefetch(row + kPrefetchRows * W + D + i);
        }
      add_row(row, bq + h0 * hd, q + j * ldq, ldq);
    }
    for (int64_t i = 0; i < nh; ++i)  // (the last tile's padding: zeros)
      pack_keys(qkv + t0 * W + D + (h0 + i) * hd, W, n, int(hd), kt + i * hd * lds);
    for (int64_t i = 0; i < nh; ++i) {
      kernels::AttnArgs a{};
      a.q = q + i * hd;
      a.ldq = ldq;
      a.M = int(n);
      a.kt = kt + i * hd * lds;
      a.v = qkv + t0 * W + 2 * D + (h0 + i) * hd;
      a.ldv = W;
      a.n_keys = n;
      a.hd = int(hd);
      a.scale = scale;
      a.scratch = sc;
      a.lds = lds;
      a.out = ctx + t0 * D + (h0 + i) * hd;
      a.ldo = D;
      attend(a);
    }
  });
}

// On AMX every encoder GEMM runs on tiles whatever its number of rows (tokens in the
// packed batch), so a text's result does not depend on its batch (the default
// crossover would send a short text alone to other kernels than the same text in a
// batch). Elsewhere it changes nothing.
constexpr int64_t kAnyRows = 1;

void Bert::project_qkv(const PackedBatch& b, const Linear& w, const float* x, float* qkv,
                       const std::function<void(int64_t, int64_t)>& prologue) const {
  const int64_t D = c_.n_embd, T = b.n_tokens(), S = b.n_seqs();
  if (!(auto_precision_ && w.quantized() && asym_kernel(w.format()))) {
    w.forward(x, T, D, qkv, 3 * D, n_threads_, ln_precision(w), kAnyRows, false, ops::Activation::None, prologue);
    return;
  }
  w.forward(x, T, D, qkv, 3 * D, n_threads_, ops::Precision::Int8Asym, kAnyRows, false, ops::Activation::None,
            prologue);
  // The first token of each text ([CLS]) carries outlier channels that cost int8 the
  // most: a reranker's score (read from that token) moved twice as far from torch's
  // with it on int8 (docs/encoders.md). Its rows are recomputed on ln_precision_.
  std::vector<float> in(size_t(S * D)), out(size_t(S * 3 * D));
  for (int64_t s = 0; s < S; ++s) std::copy_n(x + b.start[size_t(s)] * D, D, in.data() + s * D);
  w.forward(in.data(), S, D, out.data(), 3 * D, n_threads_, ln_precision_, kAnyRows, false);
  for (int64_t s = 0; s < S; ++s) std::copy_n(out.data() + s * 3 * D, 3 * D, qkv + b.start[size_t(s)] * 3 * D);
}

void Bert::forward(const PackedBatch& b, float* out) const {
  const int64_t D = c_.n_embd, F = c_.n_ff, T = b.n_tokens();
  if (T == 0) return;
  float* x = out;  // the residual stream lives in the output
  // Every element of these is written before it is read: no zero-filling. The FFN's
  // activations h reuse qkv's and ctx's place (both dead once attention's output
  // layer has run): max(4 D, F) + D floats per token.
  const int64_t wide = std::max(4 * D, F);
  const std::unique_ptr<float[]> buf(new float[size_t(T * (wide + D))]);
  float* const qkv = buf.get();
  float* const ctx = qkv + T * 3 * D;
  float* const h = buf.get();
  float* const tmp = buf.get() + T * wide;
  embed(b, x);
  const kernels::KernelTable& kt = kernels::active();
  const auto bias_of = [](const Linear& l) { return l.bias.empty() ? nullptr : l.bias.data(); };
  // A smoothed layer (only ever quantized, under Auto) runs on asymmetric int8 where
  // the ISA (now) has the kernel; elsewhere ops::matmul applies its smoothing to a copy of x.
  const auto up_prec = [&](const Linear& l) {
    return l.smoothed() && asym_kernel(l.format()) ? ops::Precision::Int8Asym : ln_precision(l);
  };
  // A LayerNorm of the residual stream plus a layer's output (and its bias) over
  // tokens [t0, t1): run by the GEMM that reads x next, on the threads that then
  // quantize those rows (ops::MatmulOptions::prologue), else on its own.
  const auto layer_norm = [&, x, tmp](const float* bias, const std::vector<float>& g, const std::vector<float>& beta) {
    return [&kt, x, tmp, bias, &g, &beta, D, eps = c_.ln_eps](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) kt.add_layer_norm(x + t * D, tmp + t * D, bias, D, g.data(), beta.data(), eps);
    };
  };
  // The previous layer's second LayerNorm, left to the next GEMM (or run at the end).
  std::function<void(int64_t, int64_t)> pending;
  for (const BertLayer& w : layers_) {
    // Biases ride on the step after their GEMM (no pass of their own): the query's
    // where attention copies Q (the key's is not needed, the value's was folded into
    // the output layer's), the output and FFN-down layers' in the LayerNorms.
    project_qkv(b, w.qkv, x, qkv, pending);
    attention(b, qkv, w.qkv.bias.data(), ctx);  // (the query's bias: first in qkv's)
    w.attn_out.forward(ctx, T, D, tmp, D, n_threads_, other_precision_, kAnyRows, false);
    // Bias and GELU: in the GEMM's tiles where its kernel applies them (asymmetric
    // int8 on avx512), else in a pass over h.
    w.up.forward(x, T, D, h, F, n_threads_, up_prec(w.up), kAnyRows, true, ops::Activation::Gelu,
                 layer_norm(bias_of(w.attn_out), w.ln1_w, w.ln1_b));
    w.down.forward(h, T, F, tmp, D, n_threads_, other_precision_, kAnyRows, false);
    pending = layer_norm(bias_of(w.down), w.ln2_w, w.ln2_b);
  }
  // The last layer's, on its own: elementwise passes over fewer rows cost less than
  // waking the other threads.
  if (!pending) return;  // (no layer)
  const bool par = n_threads_ > 1 && T >= kMinParallelRows;
  detail::parallel_ranges(T, par ? n_threads_ : 1, n_threads_, pending);
}

}  // namespace halfbyte::model
