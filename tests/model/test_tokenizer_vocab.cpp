// Tokenizers on vocabularies written here: the pre-tokenizer regexes (expected
// splits computed with Python's `regex` module on the HF patterns, applied in
// sequence as llama.cpp does), merge order, llama3's ignore_merges and add_bos,
// and hostile files (every field checked, errors name the file and the field).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/model/tokenizer.hpp"

using namespace halfbyte;
using halfbyte::model::Tokenizer;

namespace {

// --- a small GGUF vocabulary writer (independent of the reader) -------------------
struct VocabFile {
  std::string model = "gpt2";
  std::string pre = "gpt-2";  // "" = key absent
  std::vector<std::string> tokens;
  std::vector<int32_t> types;     // written if non-empty
  std::vector<float> scores;      // written if non-empty
  std::vector<std::string> merges;
  bool write_merges = true;
  std::vector<std::pair<std::string, uint32_t>> ids;  // e.g. {"tokenizer.ggml.bos_token_id", 5}
  std::vector<std::pair<std::string, bool>> flags;

  std::vector<uint8_t> b;
  template <class T>
  void pod(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void str_array(const std::string& key, const std::vector<std::string>& a) {
    str(key);
    pod<uint32_t>(9);
    pod<uint32_t>(8);
    pod<uint64_t>(a.size());
    for (const auto& s : a) str(s);
  }
  template <class T>
  void pod_array(const std::string& key, uint32_t type, const std::vector<T>& a) {
    str(key);
    pod<uint32_t>(9);
    pod<uint32_t>(type);
    pod<uint64_t>(a.size());
    for (T x : a) pod<T>(x);
  }

  std::string write(const std::string& name) {
    b.clear();
    const uint64_t n_kv = 2 + (pre.empty() ? 0 : 1) + (types.empty() ? 0 : 1) + (scores.empty() ? 0 : 1) +
                          (write_merges ? 1 : 0) + ids.size() + flags.size();
    pod<uint32_t>(0x46554747u);
    pod<uint32_t>(3);
    pod<uint64_t>(0);
    pod<uint64_t>(n_kv);
    str("tokenizer.ggml.model");
    pod<uint32_t>(8);
    str(model);
    if (!pre.empty()) {
      str("tokenizer.ggml.pre");
      pod<uint32_t>(8);
      str(pre);
    }
    str_array("tokenizer.ggml.tokens", tokens);
    if (!types.empty()) pod_array("tokenizer.ggml.token_type", 5, types);
    if (!scores.empty()) pod_array("tokenizer.ggml.scores", 6, scores);
    if (write_merges) str_array("tokenizer.ggml.merges", merges);
    for (const auto& [k, v] : ids) {
      str(k);
      pod<uint32_t>(4);
      pod<uint32_t>(v);
    }
    for (const auto& [k, v] : flags) {
      str(k);
      pod<uint32_t>(7);
      pod<uint8_t>(v ? 1 : 0);
    }
    const std::string path = "/tmp/halfbyte_test_tok_" + name + ".gguf";
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
    return path;
  }
};

// GPT-2's byte -> printable character table, written out independently of src/.
std::string byte_char(int byte) {
  const bool printable = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE);
  int cp = byte;
  if (!printable) {
    int n = 0;
    for (int c = 0; c < byte; ++c)
      if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// 256 byte tokens, then "<|endoftext|>" (control), then extra merged tokens.
VocabFile byte_level_vocab(const std::string& pre) {
  VocabFile v;
  v.pre = pre;
  for (int i = 0; i < 256; ++i) v.tokens.push_back(byte_char(i));
  v.tokens.push_back("<|endoftext|>");
  v.types.assign(v.tokens.size(), 1);
  v.types.back() = 3;
  return v;
}

void expect_error(VocabFile& vf, const std::string& name, ErrorKind kind, const std::string& needle) {
  const std::string path = vf.write(name);
  try {
    Tokenizer::from_gguf(io::GgufFile::open(path));
    FAIL("no error for " << name);
  } catch (const Error& e) {
    INFO(name << ": " << e.what());
    REQUIRE(e.kind() == kind);
    REQUIRE_THAT(e.what(), Catch::Contains(path) && Catch::Contains(needle));
  }
  std::remove(path.c_str());
}

struct PreCase {
  const char* text;
  std::vector<std::vector<size_t>> lens;  // gpt-2, llama3, qwen2, smollm, default
};
const PreCase kPreCases[] = {
    {"Hello world",
     {{5, 6}, {5, 6}, {5, 6}, {5, 6}, {5, 6}}},
    {"  leading and trailing  ",
     {{1, 8, 4, 9, 2}, {1, 8, 4, 9, 2}, {1, 8, 4, 9, 2}, {1, 8, 4, 9, 2}, {1, 8, 4, 9, 2}}},
    {"a\tb\t\tc",
     {{1, 1, 1, 1, 1, 1}, {1, 2, 1, 2}, {1, 2, 1, 2}, {1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}}},
    {"x \n\n y",
     {{1, 3, 2}, {1, 3, 2}, {1, 3, 2}, {1, 3, 2}, {1, 3, 2}}},
    {"I'M can't WE'LL 'Re 've",
     {{1, 1, 1, 4, 2, 3, 1, 2, 2, 2, 2, 2}, {1, 2, 4, 2, 3, 3, 2, 2, 2, 2}, {1, 2, 4, 2, 3, 3, 2, 2, 2, 2}, {1, 1, 1, 4, 2, 3, 1, 2, 2, 2, 2, 2}, {1, 1, 1, 4, 1, 1, 3, 1, 2, 1, 1, 2, 1, 1, 2}}},
    {"1234567 12 3",
     {{7, 3, 2}, {3, 3, 1, 1, 2, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 3, 1, 1, 2, 1, 1}}},
    {"\xE0\xA5\xA9\xE0\xA5\xAA\xE0\xA5\xAB numbers\xD9\xA3",
     {{9, 8, 2}, {9, 8, 2}, {3, 3, 3, 8, 2}, {3, 3, 3, 8, 2}, {9, 8, 2}}},
    {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88",
     {{21}, {21}, {21}, {21}, {21}}},
    {"\xC3\xA9moji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD ok",
     {{6, 13, 3}, {6, 13, 3}, {6, 13, 3}, {6, 13, 3}, {6, 13, 3}}},
    {"foo...bar!!! ?? $100+200=300",
     {{3, 3, 3, 3, 3, 2, 3, 1, 3, 1, 3}, {3, 3, 3, 3, 3, 2, 3, 1, 3, 1, 3}, {3, 3, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 3, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 3, 3, 3, 1, 2, 1, 1, 3, 1, 3, 1, 3}}},
    {"\r\n\r\n  \r\n x",
     {{8, 2}, {8, 2}, {8, 2}, {8, 2}, {8, 2}}},
    {"tabs\t\t\tend\t",
     {{4, 2, 1, 3, 1}, {4, 2, 4, 1}, {4, 2, 4, 1}, {4, 2, 1, 3, 1}, {4, 2, 1, 3, 1}}},
    {"mixed  \t\n  spaces",
     {{5, 5, 7}, {5, 4, 1, 7}, {5, 4, 1, 7}, {5, 5, 7}, {5, 5, 7}}},
    {"x=>y|z^w~`q",
     {{1, 2, 1, 1, 1, 1, 1, 2, 1}, {1, 2, 1, 2, 2, 2, 1}, {1, 2, 1, 2, 2, 2, 1}, {1, 2, 1, 1, 1, 1, 1, 2, 1}, {1, 2, 1, 1, 1, 1, 1, 1, 1, 1}}},
    {"a'b's' 'x",
     {{1, 1, 1, 2, 1, 2, 1}, {1, 2, 2, 1, 2, 1}, {1, 2, 2, 1, 2, 1}, {1, 1, 1, 2, 1, 2, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1}}},
    {"   ",
     {{3}, {3}, {3}, {3}, {3}}},
    {"\xC2\xA0nbsp\xE3\x80\x80ideo",
     {{2, 4, 3, 4}, {6, 7}, {6, 7}, {2, 4, 3, 4}, {2, 4, 3, 4}}},
    {"\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93",
     {{9, 9}, {9, 9}, {9, 3, 3, 3}, {9, 3, 3, 3}, {9, 9}}},
    {"cafe\xCC\x81 na\xC3\xAFve",
     {{4, 2, 7}, {4, 2, 7}, {4, 2, 7}, {4, 2, 7}, {4, 2, 7}}},
    {"<|im_start|>user\nhi<|im_end|>",
     {{2, 2, 1, 5, 2, 4, 1, 2, 2, 2, 1, 3, 2}, {2, 2, 6, 2, 4, 1, 2, 2, 2, 4, 2}, {2, 2, 6, 2, 4, 1, 2, 2, 2, 4, 2}, {2, 2, 1, 5, 2, 4, 1, 2, 2, 2, 1, 3, 2}, {2, 2, 1, 5, 2, 4, 1, 2, 2, 2, 1, 3, 2}}},
};

}  // namespace

TEST_CASE("tokenizer: pre-tokenizers split like the HF regexes", "[tokenizer]") {
  const char* names[] = {"gpt-2", "llama3", "qwen2", "smollm", "default"};
  for (size_t k = 0; k < 5; ++k) {
    VocabFile vf = byte_level_vocab(names[k]);
    vf.ids = {{"tokenizer.ggml.bos_token_id", 256}};  // llama3 adds BOS
    const std::string path = vf.write(std::string("pre_") + names[k]);
    const Tokenizer tok = Tokenizer::from_gguf(io::GgufFile::open(path));
    std::remove(path.c_str());
    REQUIRE(tok.pre() == names[k]);
    for (const PreCase& c : kPreCases) {
      std::vector<size_t> lens;
      for (const std::string& w : tok.pre_tokenize(c.text)) lens.push_back(w.size());
      INFO(names[k] << ": '" << c.text << "'");
      CHECK(lens == c.lens[k]);
      // Each byte is a token, no merges: encode gives one id per byte, decode restores.
      const auto ids = tok.encode(c.text, false, true);
      std::string joined;
      for (int32_t id : ids) joined += tok.token_to_piece(id, true);
      CHECK(joined == c.text);
    }
  }
  // An absent tokenizer.ggml.pre means llama.cpp's "default" sequence.
  VocabFile vf = byte_level_vocab("");
  const std::string path = vf.write("pre_absent");
  REQUIRE(Tokenizer::from_gguf(io::GgufFile::open(path)).pre() == "default");
  std::remove(path.c_str());
}

TEST_CASE("tokenizer: merges, ignore_merges and add_bos on a small vocabulary", "[tokenizer]") {
  // "a b" -> "ab", "ab c" -> "abc", "c d" -> "cd": for "abcd" ranks decide.
  VocabFile vf = byte_level_vocab("gpt-2");
  for (const char* t : {"ab", "abc", "cd", "bcd"}) vf.tokens.push_back(t), vf.types.push_back(1);
  vf.merges = {"a b", "c d", "ab c"};
  auto load_as = [&](const std::string& name) {
    const std::string path = vf.write(name);
    Tokenizer t = Tokenizer::from_gguf(io::GgufFile::open(path));
    std::remove(path.c_str());
    return t;
  };
  Tokenizer tok = load_as("merges");
  const int32_t ab = 257, abc = 258, cd = 259, bcd = 260;
  REQUIRE(tok.encode("abcd", false) == std::vector<int32_t>{ab, cd});  // "c d" (rank 1) before "ab c" (rank 2)
  REQUIRE(tok.encode("abc", false) == std::vector<int32_t>{abc});
  REQUIRE(tok.encode("xabc", false) == std::vector<int32_t>{int32_t('x'), abc});
  // llama3 takes a word that is a token whole, even without a merge path ("bcd"), and adds BOS.
  vf.pre = "llama3";
  vf.ids = {{"tokenizer.ggml.bos_token_id", 256}};
  tok = load_as("merges_llama3");
  REQUIRE(tok.add_bos());
  REQUIRE(tok.encode("bcd", true) == std::vector<int32_t>{256, bcd});
  REQUIRE(tok.encode("bcd", false) == std::vector<int32_t>{bcd});
  vf.flags = {{"tokenizer.ggml.add_bos_token", false}};
  REQUIRE(load_as("merges_llama3_nobos").encode("bcd", true) == std::vector<int32_t>{bcd});
}

TEST_CASE("tokenizer: chat-style control and user-defined tokens", "[tokenizer]") {
  VocabFile vf = byte_level_vocab("smollm");
  const int32_t im_start = 257, im_end = 258, tool = 259, im = 260;
  vf.tokens.insert(vf.tokens.end(), {"<|im_start|>", "<|im_end|>", "<tool>", "<|im"});
  vf.types.insert(vf.types.end(), {3, 3, 4, 3});
  vf.ids = {{"tokenizer.ggml.bos_token_id", 256}, {"tokenizer.ggml.eos_token_id", 256}};
  const std::string path = vf.write("chat");
  const Tokenizer tok = Tokenizer::from_gguf(io::GgufFile::open(path));
  std::remove(path.c_str());
  REQUIRE(tok.is_eog(im_end));   // by its text, as llama.cpp
  REQUIRE(tok.is_eog(256));      // <|endoftext|> (also EOS)
  REQUIRE_FALSE(tok.is_eog(im_start));
  REQUIRE(tok.eot() == im_end);  // first of llama.cpp's EOT texts present
  const std::string chat = "<|im_start|>user\nhi<tool><|im_end|>\n";
  const std::vector<int32_t> parsed = tok.encode(chat, true, true);
  REQUIRE(parsed == std::vector<int32_t>{im_start, 'u', 's', 'e', 'r', int32_t('\n'), 'h', 'i', tool, im_end, int32_t('\n')});
  REQUIRE(tok.decode(parsed) == "user\nhi<tool>\n");  // control hidden, user-defined shown
  REQUIRE(tok.decode(parsed, true) == chat);
  // Without parse_special only the user-defined token is matched; the longer
  // "<|im_start|>" wins over its prefix "<|im" when parsing.
  const std::vector<int32_t> plain = tok.encode(chat, false, false);
  REQUIRE(std::count(plain.begin(), plain.end(), tool) == 1);
  REQUIRE(std::count(plain.begin(), plain.end(), im_start) == 0);
  REQUIRE(tok.decode(plain) == chat);
  REQUIRE(tok.encode("<|im<|im_start|>", false, true) == std::vector<int32_t>{im, im_start});
}

TEST_CASE("tokenizer: hostile vocabularies give clear errors", "[tokenizer]") {
  auto base = [] { return byte_level_vocab("gpt-2"); };
  {
    VocabFile v = base();
    v.tokens.push_back("ab");
    v.types.push_back(1);
    v.merges = {"a b", "a zz"};
    expect_error(v, "merge_unknown", ErrorKind::Format, "tokenizer.ggml.merges[1] 'a zz' refers to unknown token 'zz'");
  }
  {
    VocabFile v = base();
    v.merges = {"a b"};  // "ab" is not a token
    expect_error(v, "merge_result", ErrorKind::Format, "makes 'ab', which is not a token");
  }
  {
    VocabFile v = base();
    v.merges = {"ab"};
    expect_error(v, "merge_nospace", ErrorKind::Format, "not two tokens separated by a space");
  }
  {
    VocabFile v = base();
    v.write_merges = false;
    expect_error(v, "merges_missing", ErrorKind::Format, "tokenizer.ggml.merges is missing");
  }
  {
    VocabFile v = base();
    v.types.resize(100);
    expect_error(v, "types_short", ErrorKind::Format, "tokenizer.ggml.token_type has 100 entries, fewer than the 257");
  }
  {
    VocabFile v = base();
    v.model = "llama";
    v.scores.assign(10, 0.0f);
    expect_error(v, "scores_short", ErrorKind::Format, "tokenizer.ggml.scores has 10 entries");
  }
  {
    VocabFile v = base();
    v.ids = {{"tokenizer.ggml.bos_token_id", 257}};
    expect_error(v, "bos_range", ErrorKind::Format, "tokenizer.ggml.bos_token_id = 257 is out of range");
  }
  {
    VocabFile v = base();
    v.ids = {{"tokenizer.ggml.eos_token_id", 0xFFFFFFFFu}};
    expect_error(v, "eos_range", ErrorKind::Format, "tokenizer.ggml.eos_token_id = 4294967295 is out of range");
  }
  {
    VocabFile v = base();
    v.tokens[70] = v.tokens[69];
    expect_error(v, "duplicate", ErrorKind::Format, "duplicate token 'E' at ids 69 and 70");
  }
  {
    VocabFile v = base();
    v.types[5] = 6;  // byte type but not <0xNN>
    expect_error(v, "byte_type", ErrorKind::Format, "has type byte but is not of the form <0xNN>");
  }
  {
    VocabFile v = base();
    v.flags = {{"tokenizer.ggml.add_bos_token", true}};
    expect_error(v, "add_bos_nobos", ErrorKind::Format, "add_bos_token is true but there is no BOS token id");
  }
  {
    VocabFile v = base();
    v.tokens.clear();
    v.types.clear();
    expect_error(v, "no_tokens", ErrorKind::Format, "tokenizer.ggml.tokens is empty");
  }
  {
    VocabFile v = base();
    v.pre = "no-such-pre";
    expect_error(v, "bad_pre", ErrorKind::Unsupported, "pre-tokenizer 'no-such-pre'");
  }
  {
    VocabFile v = base();
    v.model = "t5";
    expect_error(v, "bad_model", ErrorKind::Unsupported, "tokenizer model 't5' is not supported");
  }
  {
    // Wrong metadata type: the GGUF reader's message gets the file name added.
    VocabFile v = base();
    v.model = "llama";
    v.types.clear();
    v.scores.clear();
    v.flags = {{"tokenizer.ggml.bos_token_id", true}};
    expect_error(v, "bos_type", ErrorKind::Format, "tokenizer.ggml.bos_token_id");
  }
  {
    // Corrupted files: every outcome is a tokenizer or a halfbyte::Error, never a crash.
    VocabFile v = base();
    v.tokens.push_back("ab");
    v.types.push_back(1);
    v.merges = {"a b"};
    v.ids = {{"tokenizer.ggml.bos_token_id", 256}, {"tokenizer.ggml.eos_token_id", 256}};
    v.write("fuzz");
    const std::vector<uint8_t> good = v.b;
    std::mt19937 rng(11);
    int loaded = 0;
    for (int iter = 0; iter < 400; ++iter) {
      std::vector<uint8_t> bad = good;
      for (int k = 0; k < 1 + iter % 4; ++k) bad[rng() % bad.size()] = uint8_t(rng());
      if (iter % 7 == 0) bad.resize(rng() % bad.size());
      const std::string path = "/tmp/halfbyte_test_tok_fuzz.gguf";
      std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bad.data()), std::streamsize(bad.size()));
      try {
        const Tokenizer t = Tokenizer::from_gguf(io::GgufFile::open(path));
        const auto ids = t.encode("a b<|endoftext|>ab", true, true);
        for (int32_t id : ids) REQUIRE((id >= 0 && id < t.n_vocab()));
        (void)t.decode(ids);
        ++loaded;
      } catch (const Error&) {
      }
      std::remove(path.c_str());
    }
    CHECK(loaded < 400);  // most corruptions are caught
  }
  // Ids given to decode / token_text are checked.
  VocabFile v = base();
  const std::string path = v.write("ok");
  const Tokenizer tok = Tokenizer::from_gguf(io::GgufFile::open(path));
  REQUIRE_THROWS_WITH(tok.decode({1, 257}), Catch::Contains("token id 257 is out of range [0, 257)"));
  REQUIRE_THROWS_AS(tok.token_text(-1), Error);
  REQUIRE_THROWS_AS(tok.token_to_piece(1000), Error);
  std::remove(path.c_str());
  // A default-constructed tokenizer is empty and safe.
  const Tokenizer empty;
  REQUIRE(empty.n_vocab() == 0);
  REQUIRE(empty.encode("abc").empty());
}

