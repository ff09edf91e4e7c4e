// Writes the seed corpora of the fuzz targets: small valid files of each format,
// built here byte by byte from the formats' definitions (not by halfbyte).
//
//   make_fuzz_seeds <dir>   ->  <dir>/fuzz_gguf/*.gguf, <dir>/fuzz_llama2c/*.bin,
//                               <dir>/fuzz_llama2c_tokenizer/*.bin
//
// Every seed is a few KB: libFuzzer's default max_len follows the largest seed.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  Bytes& pod(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& raw(const std::string& s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  void pad_to(size_t n) { b.resize(n, 0); }
};

void save(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "make_fuzz_seeds: cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::printf("%7zu  %s\n", bytes.size(), path.c_str());
}

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

// --- vocabularies -----------------------------------------------------------
const std::string kSpace = "\xE2\x96\x81";  // U+2581

struct SpmVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

// <unk> <s> </s>, 256 byte tokens, then pieces (best score first), a few specials.
SpmVocab spm_vocab() {
  SpmVocab v;
  auto add = [&](const std::string& t, int32_t type) {
    v.tokens.push_back(t);
    v.scores.push_back(type == 1 ? -float(v.tokens.size()) : 0.0f);
    v.types.push_back(type);
  };
  add("<unk>", 2);
  add("<s>", 3);
  add("</s>", 3);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) add(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">", 6);
  for (const char* p : {"_t", "he", "_the", "_H", "ello", "_w", "or", "ld", "_a", "pp", "le", "_c", "af", "_n",
                        "ve", "12", "123", "_It", "'s", "_1", "in", "_in", "an", "_an", "er", "on", "_", "e", "l",
                        "o", "r", "d", "h", "t", "w", "a", "p", "s", "c", "f", "n", "v", "i", "I", "'", "1", "2",
                        "3", "!", ",", ".", ":", "\xC3\xA9", "\xC3\xAF", "\xE4\xBD\xA0", "\xE5\xA5\xBD"}) {
    std::string s;
    for (const char* c = p; *c; ++c) s += *c == '_' ? kSpace : std::string(1, *c);
    add(s, 1);
  }
  add("<|im_start|>", 3);
  add("<|im_end|>", 3);
  add("[INST]", 4);
  return v;
}

// GPT-2's byte -> printable stand-in code point, as UTF-8.
std::string byte_char(int b) {
  static int cp[256];
  static bool init = false;
  if (!init) {
    int extra = 0;
    for (int x = 0; x < 256; ++x) {
      const bool printable = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
      cp[x] = printable ? x : 256 + extra++;
    }
    init = true;
  }
  const int c = cp[b];
  if (c < 0x80) return std::string(1, char(c));
  return {char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
}

struct BpeVocab {
  std::vector<std::string> tokens, merges;
  std::vector<int32_t> types;
};

BpeVocab bpe_vocab() {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(byte_char(b));
    v.types.push_back(1);
  }
  const std::string G = byte_char(' '), C = byte_char('\n');
  const std::vector<std::pair<std::string, std::string>> merges = {
      {G, "t"}, {"h", "e"}, {G + "t", "he"}, {G, "w"}, {"o", "r"}, {G + "w", "or"}, {"l", "d"}, {G + "wor", "ld"},
      {"H", "e"}, {"He", "l"}, {"Hel", "l"}, {"Hell", "o"}, {"1", "2"}, {"12", "3"}, {"'", "s"}, {G, G},
      {C, C}, {G, "a"}, {"p", "p"}, {G + "a", "pp"}, {"l", "e"}, {"i", "n"}, {G, "in"}, {"e", "r"}};
  for (const auto& [a, b] : merges) {
    v.merges.push_back(a + " " + b);
    v.tokens.push_back(a + b);
    v.types.push_back(1);
  }
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    v.tokens.push_back(s);
    v.types.push_back(3);
  }
  v.tokens.push_back("<tool>");
  v.types.push_back(4);
  return v;
}

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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* t : {"fuzz_gguf", "fuzz_llama2c", "fuzz_llama2c_tokenizer"}) fs::create_directories(root / t);

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
  return 0;
}
