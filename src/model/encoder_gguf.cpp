// BERT in llama.cpp's GGUF layout (encoder_gguf.hpp): the metadata and vocabulary
// read into an EncoderConfig + WordPieceTokenizer, and a Hugging Face folder
// presented in that layout for the GGUF writer.
#include "model/encoder_gguf.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <utility>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/model_file.hpp"
#include "io/hf_json.hpp"
#include "io/metadata_build.hpp"

namespace halfbyte::model {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxSize = int64_t(1) << 24;
constexpr const char* kPhantom = "\xe2\x96\x81";  // U+2581, llama.cpp's word-start mark
constexpr int64_t kTypeNormal = 1, kTypeControl = 3, kTypeUnused = 5;  // llama_token_type

// llama.cpp's names (LLM_ARCH_BERT); no classification head is read.
constexpr EncoderNames kGgufBert{
    "", "token_embd.weight", "position_embd.weight", "token_types.weight", "token_embd_norm", "blk.",
    "attn_q", "attn_k", "attn_v", "attn_output", "attn_output_norm", "ffn_up", "ffn_down", "layer_output_norm",
    nullptr, false, true, nullptr, nullptr};

int64_t req_int(const io::GgufFile& f, const std::string& key, int64_t lo, int64_t hi) {
  const int64_t v = f.get(key).as_int(key);  // absent: "metadata key '...' is missing"
  if (v < lo || v > hi) throw_error(ErrorKind::Format, f.path(), ": ", key, " = ", v, " is outside [", lo, ", ", hi, "]");
  return v;
}

bool opt_bool(const io::GgufFile& f, const std::string& key, bool fallback) {
  return f.has(key) ? f.get(key).as_bool(key) : fallback;
}

// tokenizer.ggml.* -> WordPiece with vocab.txt's pieces ("##" continuations).
WordPieceTokenizer read_vocab(const io::GgufFile& f) {
  const std::string model = f.get("tokenizer.ggml.model").as_string("tokenizer.ggml.model");
  if (model != "bert")
    throw_error(ErrorKind::Unsupported, f.path(), ": tokenizer.ggml.model '", model,
                "' is not supported by the encoder (bert: WordPiece)");
  const std::string tk = "tokenizer.ggml.tokens", ty = "tokenizer.ggml.token_type";
  const io::GgufArray& toks = f.get(tk).as_array(tk);
  if (toks.type != io::GgufType::STRING || toks.items.empty())
    throw_error(ErrorKind::Format, f.path(), ": ", tk, " should be a non-empty array of strings");
  const int64_t n = int64_t(toks.items.size());
  if (n > kMaxSize) throw_error(ErrorKind::Format, f.path(), ": ", tk, " has more than ", kMaxSize, " tokens");
  const io::GgufArray* types = f.has(ty) ? &f.get(ty).as_array(ty) : nullptr;
  if (types && int64_t(types->items.size()) != n)
    throw_error(ErrorKind::Format, f.path(), ": ", ty, " has ", types->items.size(), " entries, ", tk, " ", n);
  std::vector<std::string> vocab(static_cast<size_t>(n));
  const std::string phantom(kPhantom);
  for (int64_t i = 0; i < n; ++i) {
    const std::string& t = toks.items[size_t(i)].as_string(tk);
    const int64_t type = types ? types->items[size_t(i)].as_int(ty) : kTypeNormal;
    if (type == kTypeControl)
      vocab[size_t(i)] = t;
    else if (t.compare(0, phantom.size(), phantom) == 0)
      vocab[size_t(i)] = t.substr(phantom.size());
    else
      vocab[size_t(i)] = "##" + t;
  }
  // Special tokens by id (llama.cpp's defaults for "bert" where a key is absent).
  auto special = [&](const char* key, int64_t fallback) -> const std::string& {
    const int64_t id = f.get_int(key, fallback);
    if (id < 0 || id >= n)
      throw_error(ErrorKind::Format, f.path(), ": ", key, " = ", id, " is outside the vocabulary of ", n, " tokens");
    return vocab[size_t(id)];
  };
  WordPieceConfig cfg;
  cfg.cls_token = special("tokenizer.ggml.bos_token_id", 101);
  cfg.sep_token = special("tokenizer.ggml.seperator_token_id", 102);
  cfg.unk_token = special("tokenizer.ggml.unknown_token_id", 100);
  cfg.pad_token = special("tokenizer.ggml.padding_token_id", 0);
  // llama.cpp: lower-case unless told otherwise; strip accents as lower-casing does.
  cfg.lowercase = opt_bool(f, "tokenizer.ggml.normalizer.lowercase", true);
  cfg.strip_accents = opt_bool(f, "tokenizer.ggml.normalizer.strip_accents", cfg.lowercase) ? 1 : 0;
  return WordPieceTokenizer::from_vocab(std::move(vocab), cfg, f.path() + ": " + tk);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

fs::path folder_of(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return fs::path(path);
  if (ends_with(path, ".safetensors")) {
    const fs::path d = fs::path(path).parent_path();
    return d.empty() ? fs::path(".") : d;
  }
  return {};
}

std::string shape(const std::vector<int64_t>& ne) {  // HF order: [rows, cols]
  std::string s = "[";
  for (size_t i = ne.size(); i-- > 0;) s += std::to_string(ne[i]) + (i ? ", " : "");
  return s + "]";
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  char m[4] = {};
  const size_t got = std::fread(m, 1, 4, fp);
  std::fclose(fp);
  return got == 4 && m[0] == 'G' && m[1] == 'G' && m[2] == 'U' && m[3] == 'F';
}

GgufEncoder read_gguf_encoder(const io::GgufFile& f) {
  const std::string arch = f.get_string("general.architecture", "");
  if (arch != "bert")
    throw_error(ErrorKind::Unsupported, f.path(), ": general.architecture '", arch,
                "' is not an encoder the Encoder runs (bert)");
  EncoderConfig c;
  c.arch = "bert";
  c.n_embd = req_int(f, "bert.embedding_length", 1, kMaxSize);
  c.n_layer = req_int(f, "bert.block_count", 1, 1 << 12);
  c.n_head = req_int(f, "bert.attention.head_count", 1, 1 << 12);
  c.n_ff = req_int(f, "bert.feed_forward_length", 1, kMaxSize);
  c.n_positions = req_int(f, "bert.context_length", 1, 1 << 20);
  const double eps = f.get("bert.attention.layer_norm_epsilon").as_float("bert.attention.layer_norm_epsilon");
  if (!(eps > 0 && eps < 1))
    throw_error(ErrorKind::Format, f.path(), ": bert.attention.layer_norm_epsilon = ", eps, " is not in (0, 1)");
  c.ln_eps = float(eps);
  if (c.n_embd % c.n_head != 0)
    throw_error(ErrorKind::Format, f.path(), ": bert.embedding_length ", c.n_embd,
                " is not a multiple of bert.attention.head_count ", c.n_head);
  if (opt_bool(f, "bert.attention.causal", false))
    throw_error(ErrorKind::Unsupported, f.path(), ": bert.attention.causal is true; the encoder runs BERT's "
                                                  "bidirectional attention only");
  // llama_pooling_type: 0 none (halfbyte pools anyway: mean), 1 mean, 2 cls.
  const int64_t pooling = f.get_int("bert.pooling_type", 1);
  if (pooling < 0 || pooling > 2)
    throw_error(ErrorKind::Unsupported, f.path(), ": bert.pooling_type = ", pooling,
                pooling == 3 ? " (last token)" : pooling == 4 ? " (rank)" : "", " is not supported (1 mean, 2 cls)");
  c.pooling = pooling == 2 ? Pooling::Cls : Pooling::Mean;
  // The GGUF says nothing of sentence-transformers' Normalize: L2-normalize, as
  // llama.cpp's llama-embedding and server do by default (--embd-normalize 2).
  c.normalize = true;

  GgufEncoder g{c, read_vocab(f), kGgufBert};
  g.config.n_vocab = g.tokenizer.n_vocab();
  const io::GgufTensorInfo* types = f.find_tensor(kGgufBert.type_emb);
  g.config.n_types = f.has("tokenizer.ggml.token_type_count")
                         ? req_int(f, "tokenizer.ggml.token_type_count", 0, 1 << 16)
                         : types && types->ne.size() == 2 ? types->ne[1] : 0;
  if (g.config.n_types == 0) g.names.type_emb = nullptr;  // no token types: pairs run as one segment
  g.config.max_length = c.n_positions;
  return g;
}

bool is_encoder_folder(const std::string& path) {
  const fs::path dir = folder_of(path);
  std::error_code ec;
  if (dir.empty() || !fs::is_regular_file(dir / "config.json", ec)) return false;
  try {
    const auto c = io::hfjson::read_file((dir / "config.json").string(), uint64_t(16) << 20);
    const auto type = io::hfjson::opt_string(c, "config.json", "model_type");
    return type && (*type == "bert" || *type == "distilbert");
  } catch (const Error&) {
    return false;  // the regular loader reports what is wrong with it
  }
}

io::GgufFile bert_folder_as_gguf(const std::string& path) {
  namespace meta = io::meta;
  const fs::path dir = folder_of(path);
  if (dir.empty()) throw_invalid(path, ": not a model folder nor a .safetensors file");
  const std::string cfg_file = (dir / "config.json").string();
  std::string archs;
  const EncoderConfig c = read_encoder_folder_config(dir.string(), archs);
  if (c.arch != "bert")
    throw_error(ErrorKind::Unsupported, cfg_file, ": model_type '", c.arch,
                "' has no llama.cpp GGUF architecture; only bert is written as GGUF");
  if (!c.labels.empty())
    throw_error(ErrorKind::Unsupported, cfg_file, ": architectures ", archs,
                " has a sequence classification head, which halfbyte does not write to GGUF (the file would "
                "hold the encoder alone); list BertModel in architectures to write the encoder");
  const WordPieceTokenizer tok = WordPieceTokenizer::from_folder(dir.string());
  const WordPieceConfig& tc = tok.config();
  if (!tc.clean_text || !tc.handle_chinese_chars || tc.continuing_prefix != "##")
    throw_error(ErrorKind::Unsupported, dir.string(), ": the tokenizer turns off clean_text or handle_chinese_chars, "
                "or its continuation prefix is not '##'; llama.cpp's WordPiece cannot do the same");
  if (tok.n_vocab() > c.n_vocab)
    throw_error(ErrorKind::Format, dir.string(), ": the tokenizer has ", tok.n_vocab(),
                " tokens, more than the model's vocab_size ", c.n_vocab, " (config.json)");

  io::GgufFile f = io::open_safetensors_tensors(path);
  const EncoderNames& hf = encoder_names("bert");
  const std::string prefix = f.find_tensor(hf.word_emb) ? "" : hf.prefix;
  const int64_t D = c.n_embd, F = c.n_ff;
  // HF name (after the prefix) -> llama.cpp name, with the shape config.json implies.
  struct Want {
    std::string hf, gguf;
    std::vector<int64_t> ne;
  };
  std::vector<Want> want = {{hf.word_emb, kGgufBert.word_emb, {D, c.n_vocab}},
                            {hf.pos_emb, kGgufBert.pos_emb, {D, c.n_positions}},
                            {hf.type_emb, kGgufBert.type_emb, {D, c.n_types}}};
  auto add = [&](const std::string& from, const std::string& to, int64_t n_out, int64_t n_in, bool matrix) {
    if (matrix) want.push_back({from + ".weight", to + ".weight", {n_in, n_out}});
    want.push_back({from + ".bias", to + ".bias", {n_out}});
  };
  auto add_norm = [&](const std::string& from, const std::string& to) {
    want.push_back({from + ".weight", to + ".weight", {D}});
    want.push_back({from + ".bias", to + ".bias", {D}});
  };
  add_norm(hf.emb_ln, kGgufBert.emb_ln);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string h = hf.layer + std::to_string(l) + ".", g = kGgufBert.layer + std::to_string(l) + ".";
    add(h + hf.q, g + kGgufBert.q, D, D, true);
    add(h + hf.k, g + kGgufBert.k, D, D, true);
    add(h + hf.v, g + kGgufBert.v, D, D, true);
    add(h + hf.attn_out, g + kGgufBert.attn_out, D, D, true);
    add_norm(h + hf.ln1, g + kGgufBert.ln1);
    add(h + hf.up, g + kGgufBert.up, F, D, true);
    add(h + hf.down, g + kGgufBert.down, D, F, true);
    add_norm(h + hf.ln2, g + kGgufBert.ln2);
  }
  std::map<std::string, std::string> keep;  // stored name -> llama.cpp name
  for (const Want& w : want) {
    std::string name = prefix + w.hf;
    if (!f.find_tensor(name) && ends_with(name, ".weight") && f.find_tensor(name.substr(0, name.size() - 7) + ".gamma"))
      name = name.substr(0, name.size() - 7) + ".gamma";
    if (!f.find_tensor(name) && ends_with(name, ".bias") && f.find_tensor(name.substr(0, name.size() - 5) + ".beta"))
      name = name.substr(0, name.size() - 5) + ".beta";
    const io::GgufTensorInfo* t = f.find_tensor(name);
    if (!t)
      throw_error(ErrorKind::Format, f.path(), ": tensor '", prefix + w.hf, "' is missing (or not of dtype F32, F16 or BF16)");
    if (t->ne != w.ne)
      throw_error(ErrorKind::Format, f.path(), ": tensor '", name, "' should have shape ", shape(w.ne),
                  " (config.json), has ", shape(t->ne));
    keep[name] = w.gguf;
  }
  std::vector<std::string> names;
  for (const io::GgufTensorInfo& t : f.tensors()) names.push_back(t.name);
  for (const std::string& n : names) {  // the pooler, pre-training heads: dropped
    const auto it = keep.find(n);
    f.rename_tensor(n, it == keep.end() ? std::string() : it->second);
  }

  f.set("general.architecture", meta::str("bert"));
  f.set("bert.context_length", meta::u32(uint64_t(c.n_positions)));
  f.set("bert.embedding_length", meta::u32(uint64_t(D)));
  f.set("bert.feed_forward_length", meta::u32(uint64_t(F)));
  f.set("bert.block_count", meta::u32(uint64_t(c.n_layer)));
  f.set("bert.attention.head_count", meta::u32(uint64_t(c.n_head)));
  f.set("bert.attention.layer_norm_epsilon", meta::f32(c.ln_eps));
  f.set("bert.attention.causal", meta::boolean(false));
  f.set("bert.pooling_type", meta::u32(c.pooling == Pooling::Cls ? 2 : 1));

  // Vocabulary in llama.cpp's phantom-space form; ids the tokenizer does not name
  // (vocab_size larger than the vocabulary) become unused "[PAD<id>]".
  const std::vector<int32_t> added = tok.added_ids();
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int64_t id = 0; id < c.n_vocab; ++id) {
    const std::string text = id < tok.n_vocab() ? tok.token_text(int32_t(id)) : std::string();
    if (text.empty()) {
      tokens.push_back("[PAD" + std::to_string(id) + "]");
      types.push_back(int32_t(kTypeUnused));
    } else if (std::binary_search(added.begin(), added.end(), int32_t(id))) {
      tokens.push_back(text);
      types.push_back(int32_t(kTypeControl));
    } else {
      tokens.push_back(text.compare(0, 2, "##") == 0 ? text.substr(2) : kPhantom + text);
      types.push_back(int32_t(kTypeNormal));
    }
  }
  f.set("tokenizer.ggml.model", meta::str("bert"));
  f.set("tokenizer.ggml.pre", meta::str("default"));  // llama.cpp's WordPiece has one pre-tokenizer
  f.set("tokenizer.ggml.tokens", meta::str_array(std::move(tokens)));
  f.set("tokenizer.ggml.token_type", meta::i32_array(types));
  f.set("tokenizer.ggml.token_type_count", meta::u32(uint64_t(c.n_types)));
  f.set("tokenizer.ggml.bos_token_id", meta::u32(uint64_t(tok.cls())));
  f.set("tokenizer.ggml.eos_token_id", meta::u32(uint64_t(tok.sep())));
  f.set("tokenizer.ggml.seperator_token_id", meta::u32(uint64_t(tok.sep())));  // (sic: llama.cpp's key)
  f.set("tokenizer.ggml.unknown_token_id", meta::u32(uint64_t(tok.unk())));
  if (tok.pad() >= 0) f.set("tokenizer.ggml.padding_token_id", meta::u32(uint64_t(tok.pad())));
  if (const int32_t mask = tok.token_id("[MASK]"); mask >= 0)
    f.set("tokenizer.ggml.mask_token_id", meta::u32(uint64_t(mask)));
  f.set("tokenizer.ggml.add_bos_token", meta::boolean(true));
  f.set("tokenizer.ggml.add_eos_token", meta::boolean(true));
  f.set("tokenizer.ggml.add_sep_token", meta::boolean(false));
  f.set("tokenizer.ggml.normalizer.lowercase", meta::boolean(tc.lowercase));
  f.set("tokenizer.ggml.normalizer.strip_accents",
        meta::boolean(tc.strip_accents < 0 ? tc.lowercase : tc.strip_accents > 0));
  return f;
}

}  // namespace halfbyte::model
