// llama2.c checkpoints and tokenizer.bin: tiny valid files written here from the
// format's definition (run.c / export.py layout), and malformed variants that
// must each give a halfbyte::Error of the right kind naming the problem.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/io/model_file.hpp"
#include "byte_writer.hpp"
#include "halfbyte/model/tokenizer.hpp"

using namespace halfbyte;
using namespace halfbyte::io;
using Catch::Contains;
using halfbyte::test::Bytes;

namespace {

// A file under /tmp, removed when the test ends. `size` > bytes: a hole follows.
struct TmpFile {
  std::string path;
  TmpFile(const std::string& name, const std::vector<uint8_t>& bytes, uint64_t size = 0)
      : path("/tmp/halfbyte_test_llama2c_" + name) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (size > bytes.size()) std::filesystem::resize_file(path, size);
  }
  ~TmpFile() { std::remove(path.c_str()); }
};

struct Dims {
  int32_t dim = 8, hidden = 16, layers = 2, heads = 2, kv_heads = 1, vocab = 10, seq = 4;
};

// Float count of the weights after the header (run.c's layout).
size_t n_floats(const Dims& d, int version, bool shared) {
  const size_t D = size_t(d.dim), F = size_t(d.hidden), L = size_t(d.layers), V = size_t(d.vocab);
  const size_t hs = D / size_t(d.heads), kv = size_t(d.kv_heads) * hs;
  size_t n = V * D + L * (2 * D + 2 * D * D + 2 * kv * D + 3 * F * D) + D;
  if (version == 0) n += size_t(d.seq) * hs;  // freq_cis_real, freq_cis_imag: [seq, hs / 2] each
  if (!shared) n += V * D;
  return n;
}

// version 0: legacy 28-byte header (negative vocab: separate classifier);
// version 1: "ak42", version, the same 7 fields, shared flag, padded to 256.
std::vector<uint8_t> header(const Dims& d, int version = 0, bool shared = true, int32_t v1_version = 1) {
  Bytes b;
  if (version == 1) b.pod<uint32_t>(0x616b3432u).pod<int32_t>(v1_version);
  b.pod(d.dim).pod(d.hidden).pod(d.layers).pod(d.heads).pod(d.kv_heads);
  b.pod<int32_t>(version == 0 && !shared ? -d.vocab : d.vocab).pod(d.seq);
  if (version == 1) {
    b.pod<uint8_t>(shared);
    b.b.resize(256, 0);
  }
  return b.b;
}

std::vector<uint8_t> checkpoint(const Dims& d, int version = 0, bool shared = true) {
  std::vector<uint8_t> b = header(d, version, shared);
  const size_t n = n_floats(d, version, shared);
  for (size_t i = 0; i < n; ++i) {
    const float x = float(i % 13) * 0.125f;
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + 4);
  }
  return b;
}

// Expects `fn` to throw a halfbyte::Error of `kind` whose message holds each needle.
template <class Fn>
void expect_error(Fn fn, ErrorKind kind, const std::vector<std::string>& needles) {
  try {
    fn();
    FAIL("no error");
  } catch (const Error& e) {
    INFO(e.what());
    REQUIRE(e.kind() == kind);
    for (const auto& n : needles) REQUIRE_THAT(e.what(), Contains(n));
  }
}

void expect_checkpoint_error(const std::vector<uint8_t>& bytes, const std::string& name, ErrorKind kind,
                             const std::vector<std::string>& needles, uint64_t size = 0) {
  INFO("checkpoint " << name);
  const TmpFile f(name, bytes, size);
  std::vector<std::string> all = needles;
  all.push_back(f.path);
  expect_error([&] { open_llama2c(f.path); }, kind, all);
}

// tokenizer.bin: i32 max_token_length, then per token f32 score, i32 length, bytes.
struct TokenizerBin {
  int32_t max_len = 8;
  std::vector<std::pair<float, std::string>> tokens = {
      {0.0f, "<unk>"}, {0.0f, "\n<s>\n"}, {0.0f, "\n</s>\n"}, {0.0f, "<0x0A>"}, {-1.0f, " the"},
      {-2.0f, " t"},   {-3.0f, "he"},     {-4.0f, "a b"},     {-5.0f, " x"},    {-6.0f, "\xC3\xA9"}};
  std::vector<uint8_t> bytes() const {
    Bytes b;
    b.pod(max_len);
    for (const auto& [score, s] : tokens) b.pod(score).pod<int32_t>(int32_t(s.size())).raw(s);
    return b.b;
  }
};

void expect_tokenizer_error(const std::vector<uint8_t>& bytes, const std::string& name,
                            const std::vector<std::string>& needles) {
  INFO("tokenizer.bin " << name);
  const TmpFile model("tok_model_" + name, checkpoint(Dims{}));
  const TmpFile tok("tok_" + name, bytes);
  GgufFile f = open_llama2c(model.path);
  std::vector<std::string> all = needles;
  all.push_back(tok.path);
  expect_error([&] { add_llama2c_tokenizer(f, tok.path); }, ErrorKind::Format, all);
}

}  // namespace

TEST_CASE("llama2c: v0 and v1 checkpoints open as GGUF-named tensors", "[llama2c]") {
  for (int version : {0, 1}) {
    for (bool shared : {true, false}) {
      INFO("version " << version << ", shared " << shared);
      Dims d;
      const TmpFile t("valid", checkpoint(d, version, shared));
      const GgufFile f = open_llama2c(t.path);
      REQUIRE(f.format() == "llama2.c");
      REQUIRE(f.get_int("llama.block_count", 0) == 2);
      REQUIRE(f.get_int("llama.attention.head_count_kv", 0) == 1);
      REQUIRE(f.get_int("llama2c.vocab_size", 0) == 10);
      REQUIRE(f.tensor("token_embd.weight").ne == std::vector<int64_t>{8, 10});
      REQUIRE(f.tensor("blk.1.attn_k.weight").ne == std::vector<int64_t>{8, 4});
      REQUIRE(f.tensor("blk.1.ffn_down.weight").ne == std::vector<int64_t>{16, 8});
      REQUIRE((f.find_tensor("output.weight") != nullptr) == !shared);
      const GgufTensorInfo& last = shared ? f.tensor(version == 0 ? "output_norm.weight" : "blk.1.ffn_up.weight")
                                          : f.tensor("output.weight");
      if (version == 1 || !shared) REQUIRE(last.offset + last.nbytes == f.file_size());
    }
  }
}

TEST_CASE("llama2c: a matrix with one row stays a matrix", "[llama2c]") {
  // Regression (found by fuzz_llama2c): every [1, n] tensor was laid out as a
  // vector, so vocab_size 1 gave a 1-D token_embd.weight the model refused and
  // hidden_dim 1 1-D FFN weights.
  for (int version : {0, 1}) {
    Dims d;
    d.vocab = 1;
    d.hidden = 1;
    const TmpFile t("one_row", checkpoint(d, version, false));
    const GgufFile f = open_llama2c(t.path);
    REQUIRE(f.tensor("token_embd.weight").ne == std::vector<int64_t>{8, 1});
    REQUIRE(f.tensor("output.weight").ne == std::vector<int64_t>{8, 1});
    REQUIRE(f.tensor("blk.0.ffn_gate.weight").ne == std::vector<int64_t>{8, 1});
    REQUIRE(f.tensor("blk.0.ffn_down.weight").ne == std::vector<int64_t>{1, 8});
    REQUIRE(f.tensor("blk.0.attn_norm.weight").ne == std::vector<int64_t>{8});
    REQUIRE(f.tensor("output.weight").offset + 32 == f.file_size());
  }
}

TEST_CASE("llama2c: malformed checkpoints give clear errors", "[llama2c]") {
  using K = ErrorKind;
  expect_checkpoint_error({}, "empty", K::Format, {"too short for a llama2.c checkpoint (0 bytes)"});
  expect_checkpoint_error({1, 2, 3}, "tiny", K::Format, {"too short", "(3 bytes)"});
  {
    auto h = header(Dims{});
    h.resize(27);
    expect_checkpoint_error(h, "header_27", K::Format, {"too short", "(27 bytes)"});
  }
  // A header with `set` applied, then 4 KB of zero weights.
  auto with = [](auto set) {
    Dims d;
    set(d);
    std::vector<uint8_t> b = header(d);
    b.resize(b.size() + 4096, 0);
    return b;
  };
  expect_checkpoint_error(with([](Dims& d) { d.dim = 0; }), "zero_dim", K::Format, {"dim = 0 is out of range"});
  expect_checkpoint_error(with([](Dims& d) { d.hidden = -16; }), "neg_hidden", K::Format,
                          {"hidden_dim = -16 is out of range"});
  expect_checkpoint_error(header([] { Dims d; d.dim = 1 << 30; return d; }()), "huge_dim", K::Format,
                          {"dim = 1073741824 is out of range 1..16777216"});
  expect_checkpoint_error(header([] { Dims d; d.seq = -1; return d; }()), "neg_seq", K::Format, {"seq_len = -1"});
  expect_checkpoint_error(header([] { Dims d; d.vocab = INT32_MIN; return d; }()), "min_vocab", K::Format,
                          {"vocab_size = 2147483648 is out of range"});
  expect_checkpoint_error(header([] { Dims d; d.heads = 0; return d; }()), "zero_heads", K::Format,
                          {"n_heads = 0"});
  // Heads that do not divide the width, more KV heads than heads, odd head size.
  expect_checkpoint_error(with([](Dims& d) { d.heads = 3; }), "heads_3", K::Format,
                          {"n_heads 3", "do not form whole, even-sized heads"});
  expect_checkpoint_error(with([](Dims& d) { d.kv_heads = 4; }), "kv_heads_4", K::Format,
                          {"n_kv_heads 4", "do not form whole, even-sized heads"});
  expect_checkpoint_error(with([](Dims& d) { d.dim = 6; }), "odd_head", K::Format,
                          {"dim 6", "do not form whole, even-sized heads"});

  // Truncated weights: one float short, v0 and v1, shared and not.
  for (int version : {0, 1}) {
    for (bool shared : {true, false}) {
      auto b = checkpoint(Dims{}, version, shared);
      const size_t full = b.size();
      b.resize(full - 4);
      expect_checkpoint_error(b, "short_v" + std::to_string(version) + (shared ? "s" : "u"), K::Format,
                              {"checkpoint is truncated", "needs " + std::to_string(full) + " bytes",
                               "the file has " + std::to_string(full - 4)});
    }
  }
  // A header alone, claiming the largest shapes: the needed size is counted
  // without wrapping (it exceeds 2^64 bytes) and no tensor is made.
  {
    Dims d;
    d.dim = d.hidden = d.vocab = d.seq = 1 << 24;
    d.heads = d.kv_heads = 1 << 20;
    d.layers = 4096;
    expect_checkpoint_error(header(d), "max_shapes", K::Format,
                            {"truncated", "needs 18446744073709551615 bytes", "the file has 28"});
  }

  // v1: the version, the header's length, its fields.
  expect_checkpoint_error(header(Dims{}, 1, true, 2), "v1_version2", K::Unsupported,
                          {"checkpoint version 2 is not supported"});
  expect_checkpoint_error(header(Dims{}, 1, true, -7), "v1_version_neg", K::Unsupported, {"version -7"});
  {
    auto h = header(Dims{}, 1);
    h.resize(100);
    expect_checkpoint_error(h, "v1_short_header", K::Format, {"truncated llama2.c v1 header (100 bytes)"});
  }
  expect_checkpoint_error(header([] { Dims d; d.kv_heads = 0; return d; }(), 1), "v1_zero_kv", K::Format,
                          {"n_kv_heads = 0"});
  {
    auto b = checkpoint(Dims{}, 1);
    b.resize(300);
    expect_checkpoint_error(b, "v1_short_weights", K::Format, {"truncated", "the file has 300"});
  }
  // A missing file is an I/O error.
  expect_error([] { open_llama2c("/nonexistent/stories.bin"); }, K::Io, {"/nonexistent/stories.bin"});
}

TEST_CASE("llama2c: n_layers is bounded before any tensor is made", "[llama2c]") {
  // Regression: a 28-byte header with 2^24 layers made ~150M tensor entries
  // (gigabytes) before the file size was compared.
  Dims d;
  d.dim = 2;
  d.hidden = 2;
  d.heads = d.kv_heads = 1;
  d.layers = 1 << 24;
  expect_checkpoint_error(header(d), "many_layers", ErrorKind::Format,
                          {"n_layers = 16777216 is out of range 1..4096"});
  d.layers = 4096;  // in range: the file is then too short
  expect_checkpoint_error(header(d), "4096_layers", ErrorKind::Format, {"truncated", "layers 4096"});
}

TEST_CASE("llama2c: tokenizer.bin becomes a SentencePiece vocabulary", "[llama2c]") {
  const TmpFile model("tok_model", checkpoint(Dims{}));
  const TmpFile tok("tok_valid", TokenizerBin{}.bytes());
  GgufFile f = open_llama2c(model.path);
  add_llama2c_tokenizer(f, tok.path);
  const model::Tokenizer t = model::Tokenizer::from_gguf(f);
  REQUIRE(t.n_vocab() == 10);
  REQUIRE(t.bos() == 1);
  REQUIRE(t.token_text(1) == "<s>");
  REQUIRE(t.token_text(2) == "</s>");
  REQUIRE(t.token_type(0) == model::TokenType::Unknown);
  REQUIRE(t.token_type(3) == model::TokenType::Byte);
  REQUIRE(t.token_text(4) == "\xE2\x96\x81the");
  REQUIRE(t.token_text(7) == "a\xE2\x96\x81" "b");
  REQUIRE(t.encode("the") == std::vector<int32_t>{1, 4});
  REQUIRE(t.decode(t.encode("the x", false)) == "the x");
}

TEST_CASE("llama2c: malformed tokenizer.bin files give clear errors", "[llama2c]") {
  const TokenizerBin good;
  const std::vector<uint8_t> ok = good.bytes();
  expect_tokenizer_error({}, "empty", {"truncated at token #-1 (max_token_length) at offset 0"});
  expect_tokenizer_error({8, 0}, "short_max_len", {"truncated at token #-1 (max_token_length)"});
  {
    TokenizerBin t;
    t.max_len = -5;
    expect_tokenizer_error(t.bytes(), "neg_max_len", {"max_token_length = -5 is out of range"});
    t.max_len = 1 << 20;
    expect_tokenizer_error(t.bytes(), "huge_max_len", {"max_token_length = 1048576 is out of range"});
  }
  // Token lengths: negative, above max_token_length, past the end of the file.
  auto patch_len = [&](size_t token, int32_t len) {
    std::vector<uint8_t> b = ok;
    size_t pos = 4;
    for (size_t i = 0; i < token; ++i) pos += 8 + good.tokens[i].second.size();
    std::memcpy(b.data() + pos + 4, &len, 4);
    return b;
  };
  expect_tokenizer_error(patch_len(3, -1), "neg_len", {"token #3 has length -1 (max_token_length 8)"});
  expect_tokenizer_error(patch_len(2, INT32_MIN), "min_len", {"token #2 has length -2147483648"});
  expect_tokenizer_error(patch_len(7, 9), "long_len", {"token #7 has length 9 (max_token_length 8)"});
  {
    std::vector<uint8_t> b = patch_len(9, 8);  // the last token claims 8 bytes, 2 remain
    expect_tokenizer_error(b, "len_past_end", {"truncated at token #9 (bytes)", "vocabulary has 10 tokens"});
  }
  // Truncated anywhere: every cut of the file is refused with "truncated".
  for (size_t n = 0; n < ok.size(); ++n) {
    std::vector<uint8_t> b(ok.begin(), ok.begin() + long(n));
    expect_tokenizer_error(b, "cut_" + std::to_string(n), {"truncated"});
  }
}

TEST_CASE("llama2c: a vocabulary size the tokenizer file cannot hold is refused before allocating", "[llama2c]") {
  // Regression: the token count comes from the model; it was reserved for before
  // the tokenizer file was read (2^24 tokens: 512 MB for a 40-byte file).
  Dims d;
  d.dim = 2;
  d.hidden = 2;
  d.layers = 1;
  d.heads = d.kv_heads = 1;
  d.vocab = 1 << 24;
  const uint64_t size = 28 + 4 * (uint64_t(d.vocab) * 2 + 64);  // sparse: the weights are a hole
  const TmpFile model("big_vocab", header(d), size);
  GgufFile f = open_llama2c(model.path);
  REQUIRE(f.get_int("llama2c.vocab_size", 0) == 1 << 24);
  const TmpFile tok("tok_big_vocab", TokenizerBin{}.bytes());
  expect_error([&] { add_llama2c_tokenizer(f, tok.path); }, ErrorKind::Format,
               {tok.path, "truncated: the model's vocabulary has 16777216 tokens, which need at least 134217732 bytes"});

  // From another format's metadata the count can be anything an int64 holds:
  // 2^62 made std::vector::reserve throw std::length_error (not a halfbyte::Error).
  f.set("llama2c.vocab_size", GgufValue{GgufType::U64, uint64_t(1) << 62});
  expect_error([&] { add_llama2c_tokenizer(f, tok.path); }, ErrorKind::Format,
               {"vocabulary has 4611686018427387904 tokens", "need at least 18446744073709551615 bytes"});
  f.set("llama2c.vocab_size", GgufValue{GgufType::I64, int64_t(-3)});
  expect_error([&] { add_llama2c_tokenizer(f, tok.path); }, ErrorKind::Format, {"vocabulary size"});
}
