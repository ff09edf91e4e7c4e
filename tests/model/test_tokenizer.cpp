// Tokenizers on llama.cpp's vocabularies and test vectors (tests/data/tokenizer-tests):
// exact ids, round trips (UTF-8, invalid bytes), special tokens and speed.
// Synthetic and hostile vocabularies are in test_tokenizer_vocab.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/model/tokenizer.hpp"

using namespace halfbyte;
using halfbyte::model::Tokenizer;

namespace {

const std::string kDir = HALFBYTE_SHARED_DIR "/tokenizer-tests/";

bool have_vectors() {
  std::ifstream probe(kDir + "ggml-vocab-gpt-2.gguf");
  return bool(probe);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Vector {
  std::string text;
  std::vector<int32_t> ids;
};

// X.inp: strings each followed by "\n__ggml_vocab_test__\n"; X.out: one line of ids per string.
std::vector<Vector> load_vectors(const std::string& name) {
  const std::string inp = slurp(kDir + name + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Vector> v;
  for (size_t pos = 0; pos < inp.size();) {
    size_t end = inp.find(sep, pos);
    if (end == std::string::npos) end = inp.size();
    v.push_back({inp.substr(pos, end - pos), {}});
    pos = end + sep.size();
  }
  std::ifstream out(kDir + name + ".out");
  std::string line;
  size_t i = 0;
  while (std::getline(out, line) && i < v.size()) {
    std::istringstream ls(line);
    for (int32_t id; ls >> id;) v[i].ids.push_back(id);
    ++i;
  }
  REQUIRE(i == v.size());
  return v;
}

Tokenizer load(const std::string& name) {
  return Tokenizer::from_gguf(io::GgufFile::open(kDir + name));
}

// Text that llama.cpp's BPE decode clean-up (" ," " ." " ?" " !", " ' ", " 's"
// " 'm" " 're" " 've") would change.
bool bpe_cleanup_applies(const std::string& s) {
  for (const char* t : {" ,", " .", " ?", " !", " ' ", " 's", " 'm", " 're", " 've"})
    if (s.find(t) != std::string::npos) return true;
  return false;
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

}  // namespace

TEST_CASE("tokenizer: llama.cpp vectors, SentencePiece (llama-spm)", "[tokenizer]") {
  if (!have_vectors()) {
    WARN("skipped: " << kDir << " not found");
    return;
  }
  const Tokenizer tok = load("ggml-vocab-llama-spm.gguf");
  REQUIRE(tok.kind() == Tokenizer::Kind::Spm);
  REQUIRE(tok.n_vocab() == 32000);
  REQUIRE(tok.bos() == 1);
  REQUIRE(tok.eos() == 2);
  REQUIRE(tok.unk() == 0);
  REQUIRE(tok.add_bos());
  REQUIRE_FALSE(tok.add_eos());
  REQUIRE(tok.is_eog(2));
  REQUIRE_FALSE(tok.is_eog(1));
  const auto vectors = load_vectors("ggml-vocab-llama-spm.gguf");
  size_t passed = 0;
  for (const Vector& v : vectors) {
    const auto ids = tok.encode(v.text, false);
    INFO("text: '" << v.text << "'\nexpected:" << ids_str(v.ids) << "\ngot:     " << ids_str(ids));
    CHECK(ids == v.ids);
    passed += ids == v.ids;
    // The space SPM prepends is removed again on decode.
    CHECK(tok.decode(ids) == v.text);
  }
  WARN("llama-spm: " << passed << "/" << vectors.size() << " vectors match");
  REQUIRE(passed == vectors.size());

  // add_special: BOS only; decode keeps the prepended space after BOS (as llama.cpp).
  const auto hello = tok.encode("Hello world");
  REQUIRE(hello.front() == 1);
  REQUIRE(std::vector<int32_t>(hello.begin() + 1, hello.end()) == tok.encode("Hello world", false));
  REQUIRE(tok.decode(hello) == " Hello world");
  REQUIRE(tok.decode(hello, true) == "<s> Hello world");
  REQUIRE(tok.token_to_piece(1).empty());
  REQUIRE(tok.token_to_piece(1, true) == "<s>");
  REQUIRE(tok.token_text(15043) == "\xE2\x96\x81Hello");
  REQUIRE(tok.token_to_piece(15043) == " Hello");
  REQUIRE(tok.token_to_piece(13) == "\n");  // <0x0A>
  REQUIRE(tok.token_type(13) == model::TokenType::Byte);
  REQUIRE(tok.encode("").size() == 1);  // [BOS], as sentencepiece
  REQUIRE(tok.encode("", false).empty());
}

TEST_CASE("tokenizer: llama.cpp vectors, byte-level BPE (gpt-2)", "[tokenizer]") {
  if (!have_vectors()) {
    WARN("skipped: " << kDir << " not found");
    return;
  }
  const Tokenizer tok = load("ggml-vocab-gpt-2.gguf");
  REQUIRE(tok.kind() == Tokenizer::Kind::Bpe);
  REQUIRE(tok.pre() == "gpt-2");
  REQUIRE(tok.n_vocab() == 50257);
  REQUIRE(tok.bos() == 50256);
  REQUIRE(tok.eos() == 50256);
  REQUIRE_FALSE(tok.add_bos());
  REQUIRE(tok.is_eog(50256));
  REQUIRE(tok.eot() == 50256);
  const auto vectors = load_vectors("ggml-vocab-gpt-2.gguf");
  size_t passed = 0, round_trips = 0;
  for (const Vector& v : vectors) {
    const auto ids = tok.encode(v.text, false);
    INFO("text: '" << v.text << "'\nexpected:" << ids_str(v.ids) << "\ngot:     " << ids_str(ids));
    CHECK(ids == v.ids);
    passed += ids == v.ids;
    REQUIRE(tok.encode(v.text, true) == ids);  // gpt-2 adds nothing
    if (!bpe_cleanup_applies(v.text)) {
      CHECK(tok.decode(ids) == v.text);
      ++round_trips;
    }
  }
  WARN("gpt-2: " << passed << "/" << vectors.size() << " vectors match, " << round_trips << " round trips checked");
  REQUIRE(passed == vectors.size());
  REQUIRE(round_trips > vectors.size() * 3 / 4);

  // The clean-up llama.cpp applies when decoding gpt-2 text.
  REQUIRE(tok.decode(tok.encode("Hello , world ! Is it ? ok . I 'm ' here")) == "Hello, world! Is it? ok. I'm'here");
  const auto comma = tok.encode("a ,");
  REQUIRE(tok.decode(comma) == "a,");
  REQUIRE(tok.token_to_piece(comma[1]) == " ,");  // pieces are not cleaned
}

TEST_CASE("tokenizer: UTF-8 round trips (emoji, CJK, invalid bytes)", "[tokenizer]") {
  if (!have_vectors()) {
    WARN("skipped: " << kDir << " not found");
    return;
  }
  const Tokenizer spm = load("ggml-vocab-llama-spm.gguf");
  const Tokenizer bpe = load("ggml-vocab-gpt-2.gguf");
  const std::vector<std::string> texts = {
      "\xF0\x9F\x98\x80 smile \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD thumbs, \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9"
      "\xE2\x80\x8D\xF0\x9F\x91\xA7 family",
      "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C\xEF\xBC\x81 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"
      "\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
      "  mixed\tlines\r\n\n  \xCE\xB1\xCE\xB2\xCE\xB3 \xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 "
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 123456789",
      // invalid UTF-8: stray continuation, truncated sequences, overlong, surrogate, > U+10FFFF, 0xFF
      std::string("a\x80z \xE4\xBD \xF0\x9F\x98 \xC0\xAF \xED\xA0\x80 \xF4\x90\x80\x80 \xFF\xFE end \xC3"),
      std::string("nul\0inside", 10),
  };
  for (const std::string& t : texts) {
    INFO("text: '" << t << "'");
    const auto s = spm.encode(t, false);
    CHECK(spm.decode(s) == t);
    const auto b = bpe.encode(t, false);
    CHECK(bpe.decode(b) == t);
    for (int32_t id : s) REQUIRE((id >= 0 && id < spm.n_vocab()));
    for (int32_t id : b) REQUIRE((id >= 0 && id < bpe.n_vocab()));
  }
  // Every invalid byte becomes its own byte token in SPM (<0xNN> = id NN + 3).
  REQUIRE(spm.encode(std::string("\xFF"), false) == std::vector<int32_t>{29871, 0xFF + 3});

  // Random bytes: no crash, ids in range, lossless (except where the BPE clean-up applies).
  std::mt19937 rng(7);
  for (int iter = 0; iter < 300; ++iter) {
    std::string t(size_t(rng() % 64), '\0');
    static const char pool[] = " a\xC3\xA9\xE2\x96\x81\xF0\x9F\x98\x80\x80.,'";
    for (char& c : t) c = char(iter % 2 ? rng() % 256 : uint8_t(pool[rng() % (sizeof(pool) - 1)]));
    INFO("iteration " << iter);
    const auto b = bpe.encode(t, true, true);
    for (int32_t id : b) REQUIRE((id >= 0 && id < bpe.n_vocab()));
    if (!bpe_cleanup_applies(t)) REQUIRE(bpe.decode(b) == t);
    const auto s = spm.encode(t, false, true);
    for (int32_t id : s) REQUIRE((id >= 0 && id < spm.n_vocab()));
    if (t.find("\xE2\x96\x81") == std::string::npos) REQUIRE(spm.decode(s) == t);  // U+2581 decodes to ' '
  }
}

TEST_CASE("tokenizer: special tokens in the input", "[tokenizer]") {
  if (!have_vectors()) {
    WARN("skipped: " << kDir << " not found");
    return;
  }
  const Tokenizer bpe = load("ggml-vocab-gpt-2.gguf");
  const std::string text = "Hello<|endoftext|> world<|endoftext|><|endoftext|>";
  std::vector<int32_t> expected = bpe.encode("Hello", false);
  expected.push_back(50256);
  for (int32_t id : bpe.encode(" world", false)) expected.push_back(id);
  expected.push_back(50256);
  expected.push_back(50256);
  REQUIRE(bpe.encode(text, false, true) == expected);
  // Without parse_special the control token's text is ordinary text.
  const auto plain = bpe.encode(text, false, false);
  REQUIRE(std::find(plain.begin(), plain.end(), 50256) == plain.end());
  REQUIRE(bpe.decode(plain) == text);
  // Control tokens render only on request.
  REQUIRE(bpe.decode(expected) == "Hello world");
  REQUIRE(bpe.decode(expected, true) == text);
  REQUIRE(bpe.encode("<|endoftext|", false, true) == bpe.encode("<|endoftext|", false, false));

  // SPM: a space is prepended again after a special token.
  const Tokenizer spm = load("ggml-vocab-llama-spm.gguf");
  std::vector<int32_t> s_expected = {1};
  for (int32_t id : spm.encode("Hi there", false)) s_expected.push_back(id);
  s_expected.push_back(2);
  REQUIRE(spm.encode("<s>Hi there</s>", false, true) == s_expected);
  REQUIRE(spm.encode("<s>Hi there</s>", true, true).size() == s_expected.size() + 1);
}

TEST_CASE("tokenizer: encode speed (10 KB through 50k merges)", "[tokenizer]") {
  if (!have_vectors()) {
    WARN("skipped: " << kDir << " not found");
    return;
  }
  const Tokenizer bpe = load("ggml-vocab-gpt-2.gguf");
  const Tokenizer spm = load("ggml-vocab-llama-spm.gguf");
  std::string text;
  const auto vectors = load_vectors("ggml-vocab-gpt-2.gguf");
  for (size_t i = 0; text.size() < 10240; ++i) text += vectors[i % vectors.size()].text + " ";
  text += std::string(2000, ' ') + std::string(2000, 'x');  // long words / runs
  for (const Tokenizer* tok : {&bpe, &spm}) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->encode(text, false);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    WARN((tok == &bpe ? "gpt-2" : "llama-spm") << ": " << text.size() << " bytes -> " << ids.size() << " tokens in "
                                               << ms << " ms");
    CHECK(ms < 100.0);
  }
}
