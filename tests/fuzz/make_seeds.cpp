// Writes the seed corpora of the fuzz targets: small valid files of each format,
// built here byte by byte from the formats' definitions (not by halfbyte).
//
//   make_fuzz_seeds <dir>   ->  <dir>/fuzz_gguf/*.gguf, <dir>/fuzz_llama2c/*.bin,
//                               <dir>/fuzz_llama2c_tokenizer/*.bin,
//                               <dir>/fuzz_safetensors/*.safetensors,
//                               <dir>/fuzz_hf_tokenizer/*.json (tokenizer.json),
//                               <dir>/fuzz_encoder_config/*.json (config.json),
//                               <dir>/fuzz_gguf_encoder/*.gguf (BERT, llama.cpp's layout)
//
// This file: the GGUF (also BERT) and llama2.c seeds and main(); make_seeds_hf.cpp
// the Hugging Face ones; seeds_common.hpp what both use. Every seed is a few KB (but
// fuzz_gguf_encoder's F32 BERT, ~41 KB: its weights at the fixture's sizes):
// libFuzzer's default max_len follows the largest seed.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "safetensors_write.hpp"
#include "seeds_common.hpp"

namespace {

using namespace halfbyte::fuzz::seeds;
namespace st = halfbyte::fuzz::st;

// --- GGUF writer ------------------------------------------------------------
enum T : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 };

class Gguf {
 public:
  explicit Gguf(uint32_t version = 3, uint64_t alignment = 32) : version_(version), align_(alignment) {}

  Bytes& kv(const std::string& key, uint32_t type) {
    ++n_kv_;
    str(kv_, key);
    return kv_.pod<uint32_t>(type);
  }
  void kv_str(const std::string& key, const std::string& v) { str(kv(key, STRING), v); }
  void kv_u32(const std::string& key, uint32_t v) { kv(key, U32).pod(v); }
  void kv_f32(const std::string& key, float v) { kv(key, F32).pod(v); }
  void kv_bool(const std::string& key, bool v) { kv(key, BOOL).pod<uint8_t>(v); }
  void kv_strings(const std::string& key, const std::vector<std::string>& v) {
    kv(key, ARRAY).pod<uint32_t>(STRING).pod<uint64_t>(v.size());
    for (const auto& s : v) str(kv_, s);
  }
  template <class X>
  void kv_array(const std::string& key, uint32_t type, const std::vector<X>& v) {
    kv(key, ARRAY).pod<uint32_t>(type).pod<uint64_t>(v.size());
    for (X x : v) kv_.pod(x);
  }
  Bytes& raw_kv() { return kv_; }

  // A tensor of ggml type `type` with `nbytes` bytes of patterned data.
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, size_t nbytes) {
    str(ti_, name);
    ti_.pod<uint32_t>(uint32_t(ne.size()));
    for (uint64_t n : ne) ti_.pod(n);
    ti_.pod(type).pod<uint64_t>(data_.b.size());
    for (size_t i = 0; i < nbytes; ++i) data_.pod<uint8_t>(uint8_t(i * 37 + 11));
    data_.pad_to((data_.b.size() + align_ - 1) / align_ * align_);
    ++n_tensors_;
  }
  // A tensor with the given data bytes.
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, const std::vector<uint8_t>& bytes) {
    str(ti_, name);
    ti_.pod<uint32_t>(uint32_t(ne.size()));
    for (uint64_t n : ne) ti_.pod(n);
    ti_.pod(type).pod<uint64_t>(data_.b.size());
    data_.b.insert(data_.b.end(), bytes.begin(), bytes.end());
    data_.pad_to((data_.b.size() + align_ - 1) / align_ * align_);
    ++n_tensors_;
  }

  std::vector<uint8_t> bytes() const {
    Bytes out;
    out.pod<uint32_t>(0x46554747u).pod(version_).pod(n_tensors_).pod(n_kv_);
    out.b.insert(out.b.end(), kv_.b.begin(), kv_.b.end());
    out.b.insert(out.b.end(), ti_.b.begin(), ti_.b.end());
    if (n_tensors_ > 0) {
      out.pad_to((out.b.size() + align_ - 1) / align_ * align_);
      out.b.insert(out.b.end(), data_.b.begin(), data_.b.end());
    }
    return out.b;
  }

  static void str(Bytes& b, const std::string& s) { b.pod<uint64_t>(s.size()).raw(s); }

 private:
  uint32_t version_;
  uint64_t align_;
  uint64_t n_kv_ = 0, n_tensors_ = 0;
  Bytes kv_, ti_, data_;
};

// --- GGUF seeds ---------------------------------------------------------------
void llama_keys(Gguf& g, const std::string& arch, uint32_t d) {
  g.kv_str("general.architecture", arch);
  g.kv_str("general.name", "fuzz seed");
  g.kv_u32(arch + ".embedding_length", d);
  g.kv_u32(arch + ".block_count", 1);
  g.kv_u32(arch + ".attention.head_count", 2);
  g.kv_u32(arch + ".attention.head_count_kv", 1);
  g.kv_u32(arch + ".feed_forward_length", 2 * d);
  g.kv_u32(arch + ".context_length", 32);
  g.kv_u32(arch + ".rope.dimension_count", d / 2);
  g.kv_f32(arch + ".rope.freq_base", 10000.0f);
  g.kv_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
}

std::vector<uint8_t> gguf_spm() {
  const SpmVocab v = spm_vocab();
  Gguf g;
  llama_keys(g, "llama", 8);
  g.kv_str("tokenizer.ggml.model", "llama");
  g.kv_strings("tokenizer.ggml.tokens", v.tokens);
  g.kv_array("tokenizer.ggml.scores", F32, v.scores);
  g.kv_array("tokenizer.ggml.token_type", I32, v.types);
  g.kv_u32("tokenizer.ggml.bos_token_id", 1);
  g.kv_u32("tokenizer.ggml.eos_token_id", 2);
  g.kv_u32("tokenizer.ggml.unknown_token_id", 0);
  g.kv_bool("tokenizer.ggml.add_bos_token", true);
  g.kv_bool("tokenizer.ggml.add_eos_token", false);
  g.tensor("token_embd.weight", {8, v.tokens.size()}, 1 /* f16 */, 8 * 2 * v.tokens.size());
  g.tensor("blk.0.attn_norm.weight", {8}, 0 /* f32 */, 32);
  return g.bytes();
}

std::vector<uint8_t> gguf_bpe(const std::string& pre) {
  const BpeVocab v = bpe_vocab();
  Gguf g;
  llama_keys(g, "qwen2", 4);
  g.kv_str("tokenizer.ggml.model", "gpt2");
  g.kv_str("tokenizer.ggml.pre", pre);
  g.kv_strings("tokenizer.ggml.tokens", v.tokens);
  g.kv_array("tokenizer.ggml.token_type", I32, v.types);
  g.kv_strings("tokenizer.ggml.merges", v.merges);
  g.kv_u32("tokenizer.ggml.bos_token_id", uint32_t(v.tokens.size() - 4));
  g.kv_u32("tokenizer.ggml.eos_token_id", uint32_t(v.tokens.size() - 4));
  g.kv_u32("tokenizer.ggml.eot_token_id", uint32_t(v.tokens.size() - 2));
  g.tensor("token_embd.weight", {4, v.tokens.size()}, 30 /* bf16 */, 4 * 2 * v.tokens.size());
  return g.bytes();
}

// Every metadata type (nested arrays too) and tensors of several ggml types; v2.
std::vector<uint8_t> gguf_types() {
  Gguf g(2, 64);
  g.kv("general.alignment", U32).pod<uint32_t>(64);
  g.kv("u8", U8).pod<uint8_t>(200);
  g.kv("i8", I8).pod<int8_t>(-100);
  g.kv("u16", U16).pod<uint16_t>(60000);
  g.kv("i16", I16).pod<int16_t>(-30000);
  g.kv("u32", U32).pod<uint32_t>(4000000000u);
  g.kv("i32", I32).pod<int32_t>(-2000000000);
  g.kv("u64", U64).pod<uint64_t>(~uint64_t(0));
  g.kv("i64", I64).pod<int64_t>(-5);
  g.kv("f32", F32).pod<float>(0.5f);
  g.kv("f64", F64).pod<double>(1e-300);
  g.kv("bool", BOOL).pod<uint8_t>(1);
  g.kv_str("string", "caf\xC3\xA9");
  g.kv_array("bools", BOOL, std::vector<uint8_t>{0, 1, 1});
  g.kv_array("u16s", U16, std::vector<uint16_t>{1, 2, 3});
  g.kv_array("f64s", F64, std::vector<double>{1.5, -2.5});
  Bytes& nested = g.kv("nested", ARRAY).pod<uint32_t>(ARRAY).pod<uint64_t>(2);
  nested.pod<uint32_t>(U8).pod<uint64_t>(3).pod<uint8_t>(1).pod<uint8_t>(2).pod<uint8_t>(3);
  nested.pod<uint32_t>(STRING).pod<uint64_t>(1);
  Gguf::str(nested, "inner");
  g.tensor("f32", {2, 3}, 0, 24);
  g.tensor("f16", {4}, 1, 8);
  g.tensor("q4_0", {32, 2}, 2, 36);
  g.tensor("q8_0", {64}, 8, 68);
  g.tensor("q4_K", {256}, 12, 144);
  g.tensor("q6_K", {256}, 14, 210);
  g.tensor("i8", {3, 1, 1, 2}, 24, 6);
  g.tensor("f64", {1}, 28, 8);
  return g.bytes();
}

// --- llama2.c seeds -----------------------------------------------------------
struct Dims {
  int32_t dim = 8, hidden = 16, layers = 2, heads = 2, kv_heads = 1, vocab = 32, seq = 8;
};

// Weights in file order for the version: only their count matters, the values
// are a simple pattern.
size_t n_floats(const Dims& d, int version, bool shared) {
  const size_t D = size_t(d.dim), F = size_t(d.hidden), L = size_t(d.layers), V = size_t(d.vocab);
  const size_t hs = D / size_t(d.heads), kv = size_t(d.kv_heads) * hs;
  size_t n = V * D + L * (2 * D + D * D + 2 * kv * D + D * D + 3 * F * D) + D;
  if (version == 0) n += size_t(d.seq) * hs;  // freq_cis_real and _imag: [seq, hs/2] each
  if (!shared) n += V * D;
  return n;
}

std::vector<uint8_t> llama2c(const Dims& d, int version, bool shared) {
  Bytes b;
  if (version == 1) b.pod<uint32_t>(0x616b3432u).pod<int32_t>(1);
  b.pod(d.dim).pod(d.hidden).pod(d.layers).pod(d.heads).pod(d.kv_heads);
  b.pod<int32_t>(version == 0 && !shared ? -d.vocab : d.vocab).pod(d.seq);
  if (version == 1) {
    b.pod<uint8_t>(shared);
    b.pad_to(256);
  }
  const size_t n = n_floats(d, version, shared);
  for (size_t i = 0; i < n; ++i) b.pod<float>(float(int(i % 17) - 8) / 16.0f);
  return b.b;
}

// tokenizer.bin as llama2.c's exporter writes it, for the SPM vocabulary (first
// `n` tokens), prefixed by the harness's 4-byte vocabulary selector (n - 1).
std::vector<uint8_t> tokenizer_bin(size_t n) {
  const SpmVocab v = spm_vocab();
  Bytes b;
  b.pod<uint32_t>(uint32_t(n - 1));
  std::vector<std::string> pieces;
  int32_t max_len = 0;
  for (size_t i = 0; i < n && i < v.tokens.size(); ++i) {
    std::string s = v.tokens[i];
    if (i == 1) s = "\n<s>\n";
    else if (i == 2) s = "\n</s>\n";
    for (size_t p; (p = s.find(kSpace)) != std::string::npos;) s.replace(p, kSpace.size(), " ");
    max_len = std::max<int32_t>(max_len, int32_t(s.size()));
    pieces.push_back(s);
  }
  while (pieces.size() < n) pieces.push_back("x" + std::to_string(pieces.size()));
  b.pod(max_len);
  for (size_t i = 0; i < n; ++i) {
    b.pod<float>(i < v.scores.size() ? v.scores[i] : -1000.0f).pod<int32_t>(int32_t(pieces[i].size()));
    b.raw(pieces[i]);
  }
  return b.b;
}


// --- BERT GGUF seeds (llama.cpp's bert layout) -----------------------------------
// The vocabulary of fuzz_encoder_config's vocab.txt in llama.cpp's phantom-space
// form: control tokens (type 3) as they are, a word-initial piece with U+2581 in
// front, a "##" continuation without its "##".
const char* const kBertTokens[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog",
                                   "sat",   "on",    "a",     "mat",   "hello",  "world", "##s", "."};

struct BertSeed {
  uint64_t dim = 32, ff = 64, heads = 2, ctx = 16;
  bool token_types = true;  // 2 types (token_types.weight, token_type_count)
  bool cls_pooling = false;
  uint32_t matrix_type = 0;  // ggml type of the layer's linears: 0 f32, 1 f16, 8 q8_0 (rows of 32)
  bool lowercase = true;
  uint32_t version = 3;
};

// Tensor bytes of n values (a pattern in [-scale, scale] plus offset) of ggml type 0, 1 or 8.
std::vector<uint8_t> ggml_values(uint64_t n, uint32_t type, uint32_t seed, float scale, float offset = 0.0f) {
  std::vector<float> v = st::pattern(size_t(n), seed, scale);
  for (float& x : v) x += offset;
  if (type == 0) return st::f32(v);
  if (type == 1) return st::f16(v);
  std::vector<uint8_t> out;  // q8_0: blocks of f16 scale d, then 32 int8 q; x = d * q
  for (size_t b = 0; b < v.size(); b += 32) {
    float amax = 0.0f;
    for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(v[i]));
    const std::vector<uint8_t> d = st::f16({amax / 127.0f});
    const float dq = amax > 0 ? 127.0f / amax : 0.0f;
    out.insert(out.end(), d.begin(), d.end());
    for (size_t i = b; i < b + 32; ++i) out.push_back(uint8_t(int8_t(std::lround(v[i] * dq))));
  }
  return out;
}

std::vector<uint8_t> gguf_bert(const BertSeed& s) {
  const uint64_t V = sizeof kBertTokens / sizeof *kBertTokens, D = s.dim, F = s.ff;
  Gguf g(s.version);
  g.kv_str("general.architecture", "bert");
  g.kv_str("general.name", "fuzz bert");
  g.kv_u32("bert.context_length", uint32_t(s.ctx));
  g.kv_u32("bert.embedding_length", uint32_t(D));
  g.kv_u32("bert.feed_forward_length", uint32_t(F));
  g.kv_u32("bert.block_count", 1);
  g.kv_u32("bert.attention.head_count", uint32_t(s.heads));
  g.kv_f32("bert.attention.layer_norm_epsilon", 1e-12f);
  g.kv_bool("bert.attention.causal", false);
  g.kv_u32("bert.pooling_type", s.cls_pooling ? 2 : 1);
  g.kv_str("tokenizer.ggml.model", "bert");
  g.kv_str("tokenizer.ggml.pre", "default");
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (const char* t : kBertTokens) {
    const std::string s8 = t;
    const bool control = s8.front() == '[' && s8.back() == ']';
    tokens.push_back(control ? s8 : s8.compare(0, 2, "##") == 0 ? s8.substr(2) : kSpace + s8);
    types.push_back(control ? 3 : 1);
  }
  g.kv_strings("tokenizer.ggml.tokens", tokens);
  g.kv_array("tokenizer.ggml.token_type", I32, types);
  if (s.token_types) g.kv_u32("tokenizer.ggml.token_type_count", 2);
  g.kv_u32("tokenizer.ggml.bos_token_id", 2);
  g.kv_u32("tokenizer.ggml.eos_token_id", 3);
  g.kv_u32("tokenizer.ggml.seperator_token_id", 3);  // (sic: llama.cpp's key)
  g.kv_u32("tokenizer.ggml.unknown_token_id", 1);
  g.kv_u32("tokenizer.ggml.padding_token_id", 0);
  g.kv_u32("tokenizer.ggml.mask_token_id", 4);
  g.kv_bool("tokenizer.ggml.add_bos_token", true);
  g.kv_bool("tokenizer.ggml.add_eos_token", true);
  g.kv_bool("tokenizer.ggml.normalizer.lowercase", s.lowercase);
  g.kv_bool("tokenizer.ggml.normalizer.strip_accents", s.lowercase);

  // ne in GGUF order: [columns, rows]. Tables and norms stay F32 (or F16 with the matrices).
  const uint32_t table_type = s.matrix_type == 1 ? 1 : 0;
  uint32_t seed = 0;
  auto norm = [&](const std::string& name) {
    g.tensor(name + ".weight", {D}, 0, ggml_values(D, 0, ++seed, 0.1f, 1.0f));
    g.tensor(name + ".bias", {D}, 0, ggml_values(D, 0, ++seed, 0.05f));
  };
  auto linear = [&](const std::string& name, uint64_t out, uint64_t in) {
    g.tensor(name + ".weight", {in, out}, s.matrix_type, ggml_values(in * out, s.matrix_type, ++seed, 0.2f));
    g.tensor(name + ".bias", {out}, 0, ggml_values(out, 0, ++seed, 0.05f));
  };
  g.tensor("token_embd.weight", {D, V}, table_type, ggml_values(D * V, table_type, ++seed, 0.5f));
  g.tensor("position_embd.weight", {D, s.ctx}, table_type, ggml_values(D * s.ctx, table_type, ++seed, 0.1f));
  if (s.token_types) g.tensor("token_types.weight", {D, 2}, 0, ggml_values(D * 2, 0, ++seed, 0.1f));
  norm("token_embd_norm");
  for (const char* p : {"attn_q", "attn_k", "attn_v", "attn_output"}) linear(std::string("blk.0.") + p, D, D);
  norm("blk.0.attn_output_norm");
  linear("blk.0.ffn_up", F, D);
  linear("blk.0.ffn_down", D, F);
  norm("blk.0.layer_output_norm");
  return g.bytes();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* t : {"fuzz_gguf", "fuzz_llama2c", "fuzz_llama2c_tokenizer", "fuzz_safetensors", "fuzz_hf_tokenizer",
                        "fuzz_encoder_config", "fuzz_gguf_encoder"})
    fs::create_directories(root / t);

  save(root / "fuzz_gguf" / "spm.gguf", gguf_spm());
  save(root / "fuzz_gguf" / "bpe_llama3.gguf", gguf_bpe("llama3"));
  save(root / "fuzz_gguf" / "bpe_default.gguf", gguf_bpe("default"));
  save(root / "fuzz_gguf" / "types_v2.gguf", gguf_types());
  save(root / "fuzz_gguf" / "empty.gguf", Gguf().bytes());

  save(root / "fuzz_llama2c" / "v0_shared.bin", llama2c(Dims{}, 0, true));
  save(root / "fuzz_llama2c" / "v0_unshared.bin", llama2c(Dims{}, 0, false));
  save(root / "fuzz_llama2c" / "v1_shared.bin", llama2c(Dims{}, 1, true));
  Dims gqa;
  gqa.heads = 4;
  gqa.kv_heads = 2;
  gqa.layers = 1;
  save(root / "fuzz_llama2c" / "v1_unshared_gqa.bin", llama2c(gqa, 1, false));

  const size_t full = spm_vocab().tokens.size();
  save(root / "fuzz_llama2c_tokenizer" / "spm_full.bin", tokenizer_bin(full));
  save(root / "fuzz_llama2c_tokenizer" / "spm_small.bin", tokenizer_bin(40));

  write_hf_seeds(root);

  // The sizes of fuzz_encoder_config's fixture, all F32 (~41 KB, the largest
  // seed); the same with Q8_0 linears (F32 tables and norms), CLS pooling, no
  // token types, cased;
  // and a small F16 one (hidden 8, FFN 16, 8 positions, GGUF v2) that mutates fastest.
  save(root / "fuzz_gguf_encoder" / "bert_f32.gguf", gguf_bert(BertSeed{}));
  BertSeed q;
  q.matrix_type = 8;
  q.token_types = false;
  q.cls_pooling = true;
  q.lowercase = false;
  save(root / "fuzz_gguf_encoder" / "bert_q8_0_cls.gguf", gguf_bert(q));
  BertSeed h;
  h.matrix_type = 1;
  h.dim = 8;
  h.ff = 16;
  h.ctx = 8;
  h.version = 2;
  save(root / "fuzz_gguf_encoder" / "bert_f16_small.gguf", gguf_bert(h));
  return 0;
}
