// Encoder: a Hugging Face BERT or DistilBERT folder (config + safetensors +
// tokenizer + sentence-transformers pooling) and embed(): tokenize, pack texts
// into batches, run the graph (bert.cpp), pool, normalize; logits(): the same
// batches through a classification head (encoder_head.cpp).
#include "halfbyte/model/encoder.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>

#include "core/thread_pool.hpp"
#include "halfbyte/core/error.hpp"
#include "halfbyte/io/model_file.hpp"
#include "halfbyte/quant/format.hpp"
#include "halfbyte/threads.hpp"
#include "io/hf_json.hpp"
#include "model/bert.hpp"
#include "model/encoder_gguf.hpp"
#include "model/encoder_head.hpp"

namespace halfbyte::model {

namespace fs = std::filesystem;
using io::hfjson::json;
namespace hj = io::hfjson;

namespace {

constexpr uint64_t kMaxConfig = uint64_t(16) << 20;
constexpr int64_t kMaxSize = int64_t(1) << 24;
// Tokens per packed forward pass: as many as keep its scratch (Bert::forward's
// buffers, the output rows, the GEMMs' quantized activations: max(4 D, F) + 2 D
// floats and 2 F bytes per token) within kBatchScratchBytes, at least
// kMinBatchTokens (enough rows for the GEMMs' tiles) and at most kMaxBatchTokens.
// MiniLM: ~1360 tokens (38 texts of 36), BERT-base ~680. Peak memory is then the
// weights plus ~this (8192 tokens of MiniLM, the former limit, took ~145 MB).
constexpr int64_t kBatchScratchBytes = int64_t(16) << 20;
constexpr int64_t kMinBatchTokens = 512, kMaxBatchTokens = 8192;

int64_t batch_tokens(const EncoderConfig& c) {
  const int64_t per_token = 4 * (std::max(4 * c.n_embd, c.n_ff) + 2 * c.n_embd) + 2 * c.n_ff;
  return std::clamp(kBatchScratchBytes / std::max<int64_t>(per_token, 1), kMinBatchTokens, kMaxBatchTokens);
}

// config.json: BERT's keys, or DistilBERT's (dim, n_layers, n_heads, hidden_dim,
// activation; no token types; LayerNorm eps fixed at 1e-12 by transformers).
// `archs`: the architectures list, for messages.
EncoderConfig read_config(const std::string& file, std::string& archs) {
  const json c = hj::read_file(file, kMaxConfig);
  if (!c.is_object()) throw_error(ErrorKind::Format, file, ": not a JSON object");
  const auto type = hj::opt_string(c, file, "model_type");
  if (!type) throw_error(ErrorKind::Format, file, ": model_type is missing");
  if (*type != "bert" && *type != "distilbert")
    throw_error(ErrorKind::Unsupported, file, ": model_type '", *type,
                "' is not supported by the encoder (bert, distilbert)");
  const bool distil = *type == "distilbert";
  const char* act_key = distil ? "activation" : "hidden_act";
  if (const auto act = hj::opt_string(c, file, act_key); act && *act != "gelu")
    throw_error(ErrorKind::Unsupported, file, ": ", act_key, " '", *act, "' is not supported (gelu)");
  if (const auto pe = hj::opt_string(c, file, "position_embedding_type"); pe && *pe != "absolute")
    throw_error(ErrorKind::Unsupported, file, ": position_embedding_type '", *pe, "' is not supported (absolute)");
  EncoderConfig e;
  e.arch = *type;
  e.n_embd = hj::req_int(c, file, distil ? "dim" : "hidden_size", 1, kMaxSize);
  e.n_layer = hj::req_int(c, file, distil ? "n_layers" : "num_hidden_layers", 1, 1 << 12);
  e.n_head = hj::req_int(c, file, distil ? "n_heads" : "num_attention_heads", 1, 1 << 12);
  e.n_ff = hj::req_int(c, file, distil ? "hidden_dim" : "intermediate_size", 1, kMaxSize);
  e.n_vocab = hj::req_int(c, file, "vocab_size", 1, kMaxSize);
  e.n_positions = hj::req_int(c, file, "max_position_embeddings", 1, 1 << 20);
  e.n_types = distil ? 0 : hj::opt_int(c, file, "type_vocab_size", 1, 1 << 16).value_or(2);
  e.ln_eps = distil ? 1e-12f : float(hj::opt_positive(c, file, "layer_norm_eps").value_or(1e-12));
  if (e.n_embd % e.n_head != 0)
    throw_error(ErrorKind::Format, file, ": ", distil ? "dim " : "hidden_size ", e.n_embd,
                " is not a multiple of ", distil ? "n_heads " : "num_attention_heads ", e.n_head);
  archs = read_head_config(c, file, e);
  return e;
}

// sentence-transformers' modules.json, 1_Pooling/config.json and
// sentence_bert_config.json, where present.
void read_sentence_transformers(const fs::path& dir, EncoderConfig& e, int64_t& max_seq_length) {
  std::error_code ec;
  fs::path pooling_dir = dir / "1_Pooling";
  const fs::path modules = dir / "modules.json";
  if (fs::exists(modules, ec)) {
    const std::string file = modules.string();
    const json m = hj::read_file(file, kMaxConfig);
    if (!m.is_array()) throw_error(ErrorKind::Format, file, ": should be a list of modules");
    for (const json& mod : m) {
      const std::string type = hj::opt_string(mod, file, "type").value_or("");
      auto is = [&](const char* cls) {
        const std::string c(cls);
        return type.size() >= c.size() && type.compare(type.size() - c.size(), c.size(), c) == 0;
      };
      if (is(".Transformer") || type.empty()) continue;
      if (is(".Normalize")) {
        e.normalize = true;
      } else if (is(".Pooling")) {
        const std::string p = hj::opt_string(mod, file, "path").value_or("1_Pooling");
        if (p.find("..") != std::string::npos || (!p.empty() && p[0] == '/'))
          throw_error(ErrorKind::Format, file, ": pooling path '", p, "' leaves the model folder");
        pooling_dir = dir / p;
      } else {
        throw_error(ErrorKind::Unsupported, file, ": module '", type,
                    "' is not supported (Transformer, Pooling, Normalize)");
      }
    }
  }
  const fs::path pooling = pooling_dir / "config.json";
  if (fs::exists(pooling, ec)) {
    const std::string file = pooling.string();
    const json p = hj::read_file(file, kMaxConfig);
    if (!p.is_object()) throw_error(ErrorKind::Format, file, ": not a JSON object");
    std::vector<std::string> modes;
    for (const auto& [key, v] : p.items()) {
      if (key.rfind("pooling_mode_", 0) != 0) continue;
      if (!v.is_boolean()) throw_error(ErrorKind::Format, file, ": ", key, " should be true or false");
      if (v.get<bool>()) modes.push_back(key);
    }
    if (modes.size() != 1 || (modes[0] != "pooling_mode_mean_tokens" && modes[0] != "pooling_mode_cls_token"))
      throw_error(ErrorKind::Unsupported, file, ": pooling ", modes.empty() ? std::string("(none)") : modes[0],
                  modes.size() > 1 ? " (and more)" : "",
                  " is not supported (exactly one of pooling_mode_mean_tokens, pooling_mode_cls_token)");
    e.pooling = modes[0] == "pooling_mode_cls_token" ? Pooling::Cls : Pooling::Mean;
  }
  const fs::path sbert = dir / "sentence_bert_config.json";
  if (fs::exists(sbert, ec)) {
    const std::string file = sbert.string();
    const json s = hj::read_file(file, kMaxConfig);
    if (auto n = hj::opt_int(s, file, "max_seq_length", 1, 1 << 20)) max_seq_length = *n;
  }
}

}  // namespace

EncoderConfig read_encoder_folder_config(const std::string& dir, std::string& archs) {
  EncoderConfig c = read_config((fs::path(dir) / "config.json").string(), archs);
  int64_t max_seq = 0;
  read_sentence_transformers(dir, c, max_seq);
  c.max_length = max_seq;
  return c;
}

struct Encoder::Impl {
  io::GgufFile file;
  EncoderConfig config;
  WordPieceTokenizer tokenizer;
  std::unique_ptr<Bert> net;
  int n_threads = 1;
  std::unique_ptr<SequenceHead> head;  // null: no classification head
  std::string architectures;           // config.json's, for messages

  // Hidden states of the packed batch, then pooled rows written to out[idx[i]].
  void run(const PackedBatch& b, const std::vector<size_t>& idx, bool normalize, float* out) const;
  // Hidden states, then the head's logits of each sequence to out[idx[i] * n_labels].
  void run_head(const PackedBatch& b, const std::vector<size_t>& idx, float* out) const;
};

namespace {

// Packs the sequences, longest first (so that a batch holds texts of similar
// length; their tokens, not a padded rectangle, go through the GEMMs either way),
// into batches of at most batch_size sequences and max_tokens tokens (a longer
// sequence alone), and calls run(batch, indices of its sequences in seqs) for each.
template <typename Run>
void for_each_batch(const std::vector<Encoding>& seqs, int batch_size, int64_t max_tokens, Run run) {
  std::vector<size_t> order(seqs.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return seqs[a].ids.size() > seqs[b].ids.size(); });
  PackedBatch b;
  std::vector<size_t> idx;
  for (size_t k = 0; k <= order.size(); ++k) {
    const bool full = k == order.size() || int64_t(idx.size()) == batch_size ||
                      (!idx.empty() && b.n_tokens() + int64_t(seqs[order[k]].ids.size()) > max_tokens);
    if (full && !idx.empty()) {
      run(b, idx);
      b = PackedBatch();
      idx.clear();
    }
    if (k == order.size()) break;
    const Encoding& e = seqs[order[k]];
    if (e.ids.size() != e.type_ids.size())
      throw_invalid("encoder: sequence ", order[k], " has ", e.ids.size(), " ids but ", e.type_ids.size(),
                    " token types");
    if (e.ids.empty()) throw_invalid("encoder: sequence ", order[k], " is empty (it needs at least [CLS])");
    b.ids.insert(b.ids.end(), e.ids.begin(), e.ids.end());
    b.types.insert(b.types.end(), e.type_ids.begin(), e.type_ids.end());
    b.start.push_back(b.n_tokens() + int64_t(e.ids.size()));
    idx.push_back(order[k]);
  }
}

}  // namespace

Encoder::Encoder() = default;
Encoder::~Encoder() = default;

std::unique_ptr<Encoder> Encoder::load(const std::string& path, const EncoderOptions& opts) {
  if (opts.n_threads < 0 || opts.n_threads > kMaxThreads)
    throw_invalid("Encoder: n_threads must be in [0, ", kMaxThreads, "], got ", opts.n_threads);
  if (opts.max_length < 0) throw_invalid("Encoder: max_length must be >= 0, got ", opts.max_length);
  std::optional<quant::Format> float_to;
  if (opts.dtype != "f32" && opts.dtype != "F32") {
    try {
      float_to = quant::Format::parse(opts.dtype);
    } catch (const Error& e) {
      throw_invalid("Encoder: dtype '", opts.dtype, "' is neither 'f32' nor a format: ", e.what());
    }
  }

  std::error_code ec;
  fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::exists(path, ec)) throw_error(ErrorKind::Io, path, ": cannot open: No such file or directory");
  if (is_gguf_file(path)) {  // llama.cpp's bert layout (encoder_gguf.cpp)
    io::GgufFile gf = io::GgufFile::open(path);
    GgufEncoder g = read_gguf_encoder(gf);
    if (opts.max_length > 0) g.config.max_length = std::min(opts.max_length, g.config.n_positions);
    if (g.config.max_length < 2)
      throw_invalid("Encoder: max_length ", g.config.max_length, " leaves no room for [CLS] and [SEP]");
    std::unique_ptr<Encoder> e(new Encoder());
    e->impl_.reset(new Impl{std::move(gf), g.config, g.tokenizer, nullptr,
                            opts.n_threads > 0 ? opts.n_threads : num_threads(), nullptr, "(GGUF)"});
    Impl& m = *e->impl_;
    m.net = std::make_unique<Bert>(m.file, m.config, "", float_to ? &*float_to : nullptr, opts.precision,
                                   m.n_threads, &g.names);
    release_thread_pool();  // see halfbyte/threads.hpp
    return e;
  }
  std::string archs;
  EncoderConfig c = read_config((dir / "config.json").string(), archs);
  int64_t max_seq = 0;
  read_sentence_transformers(dir, c, max_seq);

  std::unique_ptr<Encoder> e(new Encoder());
  e->impl_.reset(new Impl{io::open_safetensors_tensors(path), c, WordPieceTokenizer::from_folder(dir.string()),
                          nullptr, opts.n_threads > 0 ? opts.n_threads : num_threads(), nullptr, archs});
  Impl& m = *e->impl_;
  if (m.tokenizer.n_vocab() > c.n_vocab)
    throw_error(ErrorKind::Format, dir.string(), ": the tokenizer has ", m.tokenizer.n_vocab(),
                " tokens, more than the model's vocab_size ", c.n_vocab, " (config.json)");
  const int64_t declared = opts.max_length > 0 ? opts.max_length
                           : max_seq > 0         ? max_seq
                                                 : m.tokenizer.model_max_length();
  m.config.max_length = declared > 0 ? std::min(declared, c.n_positions) : c.n_positions;
  if (m.config.max_length < 2)
    throw_invalid("Encoder: max_length ", m.config.max_length, " leaves no room for [CLS] and [SEP]");
  // Tensors as the bare model saves them, or under the *For... checkpoint's prefix.
  const EncoderNames& nm = encoder_names(c.arch);
  const std::string prefix = m.file.find_tensor(nm.word_emb)                          ? ""
                             : m.file.find_tensor(std::string(nm.prefix) + nm.word_emb) ? nm.prefix
                                                                                      : "?";
  if (prefix == "?")
    throw_error(ErrorKind::Format, path, ": no tensor '", nm.word_emb, "' (nor '", nm.prefix, nm.word_emb,
                "'): not a ", c.arch, " model's weights");
  m.net = std::make_unique<Bert>(m.file, m.config, prefix, float_to ? &*float_to : nullptr, opts.precision,
                                 m.n_threads);
  if (!c.labels.empty()) m.head = std::make_unique<SequenceHead>(m.file, m.config, prefix, m.n_threads);
  release_thread_pool();  // see halfbyte/threads.hpp
  return e;
}

const EncoderConfig& Encoder::config() const noexcept { return impl_->config; }
const WordPieceTokenizer& Encoder::tokenizer() const noexcept { return impl_->tokenizer; }

Encoding Encoder::tokenize(std::string_view text) const {
  return impl_->tokenizer.encode(text, impl_->config.max_length);
}

Encoding Encoder::tokenize_pair(std::string_view a, std::string_view b) const {
  return impl_->tokenizer.encode_pair(a, b, impl_->config.max_length);
}

void Encoder::Impl::run(const PackedBatch& b, const std::vector<size_t>& idx, bool normalize, float* out) const {
  const int64_t D = config.n_embd, S = b.n_seqs();
  const std::unique_ptr<float[]> h(new float[size_t(b.n_tokens() * D)]);  // forward() writes all of it
  net->forward(b, h.get());
  detail::parallel_ranges(S, n_threads > 1 && S >= 8 ? n_threads : 1, n_threads, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t t0 = b.start[size_t(s)], n = b.start[size_t(s) + 1] - t0;
      float* row = out + int64_t(idx[size_t(s)]) * D;
      std::fill(row, row + D, 0.0f);
      if (config.pooling == Pooling::Cls || n == 1) {
        std::copy_n(h.get() + t0 * D, D, row);
      } else {
        std::vector<double> acc(size_t(D), 0.0);
        for (int64_t t = t0; t < t0 + n; ++t)
          for (int64_t i = 0; i < D; ++i) acc[size_t(i)] += h[size_t(t * D + i)];
        for (int64_t i = 0; i < D; ++i) row[i] = float(acc[size_t(i)] / double(n));
      }
      if (normalize) {  // x / max(||x||, 1e-12), as torch.nn.functional.normalize
        double ss = 0.0;
        for (int64_t i = 0; i < D; ++i) ss += double(row[i]) * row[i];
        const float inv = float(1.0 / std::max(std::sqrt(ss), 1e-12));
        for (int64_t i = 0; i < D; ++i) row[i] *= inv;
      }
    }
  });
}

std::vector<float> Encoder::embed(const std::vector<std::string>& texts, int normalize, int batch_size,
                                  const EmbedProgress& progress) const {
  if (batch_size < 1) throw_invalid("embed: batch_size must be >= 1, got ", batch_size);
  if (normalize < -1 || normalize > 1) throw_invalid("embed: normalize must be -1, 0 or 1, got ", normalize);
  const Impl& m = *impl_;
  const bool norm = normalize < 0 ? m.config.normalize : normalize > 0;
  const int64_t n = int64_t(texts.size());
  std::vector<Encoding> enc(texts.size());
  for (int64_t i = 0; i < n; ++i) enc[size_t(i)] = tokenize(texts[size_t(i)]);
  std::vector<float> out(size_t(n * m.config.n_embd));
  int64_t done = 0;
  for_each_batch(enc, batch_size, batch_tokens(m.config), [&](const PackedBatch& b, const std::vector<size_t>& idx) {
    m.run(b, idx, norm, out.data());
    done += int64_t(idx.size());
    if (progress && !progress(done, n))
      throw_error(ErrorKind::Runtime, "embed: cancelled after ", done, " of ", n, " texts");
  });
  return out;
}

std::vector<float> Encoder::hidden_states(const std::vector<Encoding>& seqs) const {
  PackedBatch b;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const Encoding& e = seqs[s];
    if (e.ids.size() != e.type_ids.size())
      throw_invalid("hidden_states: sequence ", s, " has ", e.ids.size(), " ids but ", e.type_ids.size(),
                    " token types");
    b.ids.insert(b.ids.end(), e.ids.begin(), e.ids.end());
    b.types.insert(b.types.end(), e.type_ids.begin(), e.type_ids.end());
    b.start.push_back(b.n_tokens() + int64_t(e.ids.size()));
  }
  std::vector<float> h(size_t(b.n_tokens() * impl_->config.n_embd));
  impl_->net->forward(b, h.data());
  return h;
}

void Encoder::Impl::run_head(const PackedBatch& b, const std::vector<size_t>& idx, float* out) const {
  const int64_t D = config.n_embd, L = int64_t(config.labels.size()), S = b.n_seqs();
  std::vector<float> h(size_t(b.n_tokens() * D)), first(size_t(S * D)), logits(size_t(S * L));
  net->forward(b, h.data());
  for (int64_t s = 0; s < S; ++s) std::copy_n(h.data() + b.start[size_t(s)] * D, D, first.data() + s * D);
  head->forward(first.data(), S, logits.data());
  for (int64_t s = 0; s < S; ++s) std::copy_n(logits.data() + s * L, L, out + int64_t(idx[size_t(s)]) * L);
}

std::vector<float> Encoder::logits(const std::vector<Encoding>& seqs, int batch_size) const {
  const Impl& m = *impl_;
  if (!m.head)
    throw_error(ErrorKind::Unsupported, "encoder: the model has no sequence classification head (config.json "
                "architectures: ", m.architectures, "); classify(), logits() and score() need a ",
                encoder_names(m.config.arch).head_class, " model");
  if (batch_size < 1) throw_invalid("logits: batch_size must be >= 1, got ", batch_size);
  std::vector<float> out(seqs.size() * m.config.labels.size());
  for_each_batch(seqs, batch_size, batch_tokens(m.config),
                 [&](const PackedBatch& b, const std::vector<size_t>& idx) { m.run_head(b, idx, out.data()); });
  return out;
}

std::vector<float> Encoder::logits(const std::vector<std::string>& texts, int batch_size) const {
  if (!impl_->head) return logits(std::vector<Encoding>{}, batch_size);  // the no-head error
  std::vector<Encoding> enc;
  enc.reserve(texts.size());
  for (const std::string& t : texts) enc.push_back(tokenize(t));
  return logits(enc, batch_size);
}

std::vector<float> Encoder::classify(const std::vector<Encoding>& seqs, ScoreFunction f, int batch_size) const {
  std::vector<float> x = logits(seqs, batch_size);
  apply_score_function(f, config().problem_type, n_labels(), x.data(), int64_t(seqs.size()));
  return x;
}

std::vector<float> Encoder::classify(const std::vector<std::string>& texts, ScoreFunction f, int batch_size) const {
  std::vector<float> x = logits(texts, batch_size);
  apply_score_function(f, config().problem_type, n_labels(), x.data(), int64_t(texts.size()));
  return x;
}

std::vector<float> Encoder::score(std::string_view query, const std::vector<std::string>& passages, bool sigmoid,
                                  int batch_size) const {
  if (!impl_->head) return logits(std::vector<Encoding>{}, batch_size);  // the no-head error
  if (n_labels() != 1)
    throw_error(ErrorKind::Unsupported, "encoder: score() needs a one-label head (a cross-encoder); this model has ",
                n_labels(), " labels: use classify() or logits() on the pairs");
  std::vector<Encoding> enc;
  enc.reserve(passages.size());
  for (const std::string& p : passages) enc.push_back(tokenize_pair(query, p));
  std::vector<float> x = logits(enc, batch_size);
  if (sigmoid) apply_score_function(ScoreFunction::Sigmoid, config().problem_type, 1, x.data(), int64_t(x.size()));
  return x;
}

}  // namespace halfbyte::model
