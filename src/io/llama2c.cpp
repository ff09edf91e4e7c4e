// llama2.c checkpoints (Karpathy's run.c format), fp32, little-endian:
//   v0 (legacy): 7 x int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//      vocab_size (negative: a separate classifier follows), seq_len}, then
//      token_embedding[V, D], rms_att[L, D], wq[L, H*hs, D], wk[L, Hkv*hs, D],
//      wv[L, Hkv*hs, D], wo[L, D, H*hs], rms_ffn[L, D], w1[L, F, D], w2[L, D, F],
//      w3[L, F, D], rms_final[D], freq_cis_real/imag[seq_len, hs/2] (unused),
//      wcls[V, D] if not shared.
//   v1: u32 magic "ak42", i32 version 1, the same 7 int32 (vocab positive), u8
//      shared_classifier, zero padding to 256 bytes, then rms_att[L, D],
//      rms_ffn[L, D], rms_final[D], token_embedding, wq, wk, wv, wo, w1, w2, w3,
//      (wcls).
// The weights are row-major [out, in], which is GGUF's ne = {in, out}; Q and K use
// the adjacent-pair RoPE layout, as GGUF llama files do. Presented under GGUF's
// names so the model code sees one format.
//
// tokenizer.bin: i32 max_token_length, then per token: f32 score, i32 length,
// bytes. Its exporter wrote SentencePiece pieces with U+2581 replaced by ' ' and
// BOS/EOS as "\n<s>\n" / "\n</s>\n"; converting back gives a SentencePiece vocabulary.
#include <cctype>
#include <cstring>
#include <filesystem>
#include <limits>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/model_file.hpp"
#include "io/mapped_file.hpp"
#include "io/metadata_build.hpp"

namespace halfbyte::io {
namespace {

int32_t read_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

constexpr int64_t kMaxLayers = 4096;

struct Header {
  int64_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
  bool shared;
  int version;
  uint64_t data_start;
};

Header read_header(const MappedFile& m) {
  const std::string& path = m.path();
  const uint8_t* p = m.data();
  Header h{};
  if (m.size() >= 8 && read_i32(p) == 0x616b3432) {
    h.version = read_i32(p + 4);
    if (h.version != 1)
      throw_error(ErrorKind::Unsupported, path, ": llama2.c checkpoint version ", h.version,
                  " is not supported (the legacy format and version 1, fp32; version 2 is llama2.c's own "
                  "int8 format: export fp32 or convert to GGUF)");
    if (m.size() < 256) throw_error(ErrorKind::Format, path, ": truncated llama2.c v1 header (", m.size(), " bytes)");
    p += 8;
    h.data_start = 256;
  } else {
    if (m.size() < 28) throw_error(ErrorKind::Format, path, ": too short for a llama2.c checkpoint (", m.size(), " bytes)");
    h.version = 0;
    h.data_start = 28;
  }
  int64_t v[7];
  for (int i = 0; i < 7; ++i) v[i] = read_i32(p + 4 * i);
  h.dim = v[0]; h.hidden = v[1]; h.n_layers = v[2]; h.n_heads = v[3]; h.n_kv_heads = v[4];
  h.vocab = v[5]; h.seq_len = v[6];
  if (h.version == 0) {
    h.shared = h.vocab > 0;
    if (h.vocab < 0) h.vocab = -h.vocab;
  } else {
    h.shared = p[28] != 0;
  }
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  const int64_t vals[] = {h.dim, h.hidden, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab, h.seq_len};
  // Every layer becomes 9 tensor entries: a bound of its own keeps a tiny
  // hostile header from making millions of them (real models have < 200 layers).
  const int64_t limits[] = {1 << 24, 1 << 24, kMaxLayers, 1 << 24, 1 << 24, 1 << 24, 1 << 24};
  for (int i = 0; i < 7; ++i)
    if (vals[i] <= 0 || vals[i] > limits[i])
      throw_error(ErrorKind::Format, path, ": not a GGUF, safetensors or llama2.c file (as llama2.c: header field ",
                  names[i], " = ", vals[i], " is out of range 1..", limits[i], ")");
  if (h.dim % h.n_heads != 0 || h.n_heads % h.n_kv_heads != 0 || (h.dim / h.n_heads) % 2 != 0)
    throw_error(ErrorKind::Format, path, ": llama2.c header: dim ", h.dim, ", n_heads ", h.n_heads, ", n_kv_heads ",
                h.n_kv_heads, " do not form whole, even-sized heads");
  return h;
}

}  // namespace

namespace meta {
GgufTensorInfo tensor(std::string name, std::vector<int64_t> ne, GgmlType type, uint64_t offset, uint32_t src) {
  GgufTensorInfo t;
  t.name = std::move(name);
  t.ne = std::move(ne);
  t.type = type;
  t.offset = offset;
  const GgmlTypeInfo& ti = ggml_type_info(type);
  t.nbytes = uint64_t(t.numel()) / uint64_t(ti.block) * uint64_t(ti.block_bytes);
  t.source = src;
  return t;
}
}  // namespace meta

GgufFile open_llama2c(const std::string& path) {
  auto map = std::make_unique<MappedFile>(path);
  const Header h = read_header(*map);
  const int64_t D = h.dim, F = h.hidden, L = h.n_layers, hs = h.dim / h.n_heads;
  const int64_t q_out = h.n_heads * hs, kv_out = h.n_kv_heads * hs, V = h.vocab;

  // The bytes the header's shapes need, checked before any tensor is made: up to
  // 2^12 layers of 2^48-float matrices, so counted in 128 bits.
  {
    using u128 = unsigned __int128;
    const u128 per_layer = u128(2 * D) + u128(q_out) * D + 2 * u128(kv_out) * D + u128(D) * q_out + 3 * u128(F) * D;
    u128 floats = u128(L) * per_layer + u128(D) + u128(V) * D * (h.shared ? 1 : 2);
    if (h.version == 0) floats += u128(h.seq_len) * u128(hs / 2) * 2;
    const u128 need = u128(h.data_start) + floats * 4;
    if (need > map->size())
      throw_error(ErrorKind::Format, path, ": llama2.c checkpoint is truncated: the header (dim ", D, ", hidden ", F,
                  ", layers ", L, ", vocab ", V, ") needs ", need > u128(UINT64_MAX) ? UINT64_MAX : uint64_t(need),
                  " bytes, the file has ", map->size());
  }

  std::vector<GgufTensorInfo> tensors;
  uint64_t off = h.data_start;
  // Lays out one [rows, cols] fp32 tensor per layer (or a single one) at `off`;
  // rows = kVector: a vector of `cols` (the norms). A matrix stays 2-D even with
  // one row (a vocabulary or hidden_dim of 1).
  constexpr int64_t kVector = 0;
  auto take = [&](const std::string& name, int64_t rows, int64_t cols, bool per_layer) {
    const int64_t count = per_layer ? L : 1;
    for (int64_t l = 0; l < count; ++l) {
      std::string n = per_layer ? "blk." + std::to_string(l) + "." + name : name;
      std::vector<int64_t> ne = rows == kVector ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
      tensors.push_back(meta::tensor(std::move(n), std::move(ne), GgmlType::F32, off));
      off += uint64_t(rows == kVector ? 1 : rows) * uint64_t(cols) * 4;  // all within the file: checked above
    }
  };
  auto skip = [&](int64_t n_floats) { off += uint64_t(n_floats) * 4; };
  if (h.version == 0) {
    take("token_embd.weight", V, D, false);
    take("attn_norm.weight", kVector, D, true);
    take("attn_q.weight", q_out, D, true);
    take("attn_k.weight", kv_out, D, true);
    take("attn_v.weight", kv_out, D, true);
    take("attn_output.weight", D, q_out, true);
    take("ffn_norm.weight", kVector, D, true);
    take("ffn_gate.weight", F, D, true);
    take("ffn_down.weight", D, F, true);
    take("ffn_up.weight", F, D, true);
    take("output_norm.weight", kVector, D, false);
    skip(2 * h.seq_len * (hs / 2));  // precomputed RoPE table: recomputed here
  } else {
    take("attn_norm.weight", kVector, D, true);
    take("ffn_norm.weight", kVector, D, true);
    take("output_norm.weight", kVector, D, false);
    take("token_embd.weight", V, D, false);
    take("attn_q.weight", q_out, D, true);
    take("attn_k.weight", kv_out, D, true);
    take("attn_v.weight", kv_out, D, true);
    take("attn_output.weight", D, q_out, true);
    take("ffn_gate.weight", F, D, true);
    take("ffn_down.weight", D, F, true);
    take("ffn_up.weight", F, D, true);
  }
  if (!h.shared) take("output.weight", V, D, false);

  std::map<std::string, GgufValue> kv;
  kv["general.architecture"] = meta::str("llama");
  kv["general.name"] = meta::str(std::filesystem::path(path).stem().string());
  kv["general.file_type"] = meta::u32(0);
  kv["llama.embedding_length"] = meta::u32(uint64_t(D));
  kv["llama.feed_forward_length"] = meta::u32(uint64_t(F));
  kv["llama.block_count"] = meta::u32(uint64_t(L));
  kv["llama.attention.head_count"] = meta::u32(uint64_t(h.n_heads));
  kv["llama.attention.head_count_kv"] = meta::u32(uint64_t(h.n_kv_heads));
  kv["llama.context_length"] = meta::u32(uint64_t(h.seq_len));
  kv["llama.rope.dimension_count"] = meta::u32(uint64_t(hs));
  kv["llama.rope.freq_base"] = meta::f32(10000.0);
  kv["llama.attention.layer_norm_rms_epsilon"] = meta::f32(1e-5);
  kv["llama2c.vocab_size"] = meta::u32(uint64_t(V));  // how many entries tokenizer.bin holds
  std::vector<std::unique_ptr<MappedFile>> maps;
  maps.push_back(std::move(map));
  return GgufFile::assemble(path, "llama2.c", std::move(maps), std::move(kv), std::move(tensors));
}

void add_llama2c_tokenizer(GgufFile& f, const std::string& tokenizer_bin) {
  const MappedFile m(tokenizer_bin);
  const std::string& path = m.path();
  const int64_t n = f.has("llama2c.vocab_size") ? f.get("llama2c.vocab_size").as_int("llama2c.vocab_size")
                    : f.find_tensor("token_embd.weight") && f.tensor("token_embd.weight").ne.size() == 2
                        ? f.tensor("token_embd.weight").ne[1]
                        : 0;
  if (n <= 0)
    throw_error(ErrorKind::Format, path, ": a llama2.c tokenizer.bin needs the model's vocabulary size, and ",
                f.path(), " does not give one");
  const uint8_t* p = m.data();
  const uint64_t size = m.size();
  uint64_t pos = 0;
  auto need = [&](uint64_t k, const char* what, int64_t i) {
    if (k > size - pos)
      throw_error(ErrorKind::Format, path, ": truncated at token #", i, " (", what, ") at offset ", pos,
                  "; the model's vocabulary has ", n, " tokens");
  };
  need(4, "max_token_length", -1);
  const int32_t max_len = read_i32(p);
  pos = 4;
  if (max_len <= 0 || max_len > (1 << 16))
    throw_error(ErrorKind::Format, path, ": max_token_length = ", max_len, " is out of range (not a tokenizer.bin?)");
  // Each token takes >= 8 bytes (score, length): bound the count by the file
  // before reserving for it (the count comes from another, maybe hostile, file).
  if (uint64_t(n) > (size - pos) / 8)
    throw_error(ErrorKind::Format, path, ": truncated: the model's vocabulary has ", n, " tokens, which need at least ",
                uint64_t(n) > (UINT64_MAX - 4) / 8 ? UINT64_MAX : 4 + 8 * uint64_t(n), " bytes; the file has ", size);
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  tokens.reserve(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    need(8, "score and length", i);
    float score;
    std::memcpy(&score, p + pos, 4);
    const int32_t len = read_i32(p + pos + 4);
    pos += 8;
    if (len < 0 || len > max_len)
      throw_error(ErrorKind::Format, path, ": token #", i, " has length ", len, " (max_token_length ", max_len, ")");
    need(uint64_t(len), "bytes", i);
    std::string s(reinterpret_cast<const char*>(p + pos), size_t(len));
    pos += uint64_t(len);
    // Undo the exporter: ' ' was U+2581; BOS and EOS were "\n<s>\n" and "\n</s>\n".
    int32_t type = 1;  // normal
    if (i == 1 && s == "\n<s>\n") s = "<s>", type = 3;
    else if (i == 2 && s == "\n</s>\n") s = "</s>", type = 3;
    else if (i == 0 && s == "<unk>") type = 2;
    else if (s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' && std::isxdigit((unsigned char)s[3]) &&
             std::isxdigit((unsigned char)s[4]))
      type = 6;  // byte
    else {
      std::string out;
      for (char c : s) out += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
      s = std::move(out);
    }
    tokens.push_back(std::move(s));
    scores.push_back(score);
    types.push_back(type);
  }
  f.set("tokenizer.ggml.model", meta::str("llama"));
  f.set("tokenizer.ggml.tokens", meta::str_array(std::move(tokens)));
  f.set("tokenizer.ggml.scores", meta::f32_array(scores));
  f.set("tokenizer.ggml.token_type", meta::i32_array(types));
  f.set("tokenizer.ggml.bos_token_id", meta::u32(1));
  f.set("tokenizer.ggml.eos_token_id", meta::u32(2));
  f.set("tokenizer.ggml.unknown_token_id", meta::u32(0));
  f.set("tokenizer.ggml.add_bos_token", meta::boolean(true));
  f.set("tokenizer.ggml.add_eos_token", meta::boolean(false));
  f.set("tokenizer.ggml.add_space_prefix", meta::boolean(true));
}

}  // namespace halfbyte::io
