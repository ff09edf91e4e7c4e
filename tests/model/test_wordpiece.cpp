// WordPiece (BERT) tokenizer on small hand-written vocabularies: the basic
// tokenizer's steps, greedy longest match, [UNK] rules, templates, truncation,
// the files it loads and the errors of malformed ones. The comparison with
// Hugging Face tokenizers on a real vocabulary is tests/python/test_wordpiece.py.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/model/wordpiece.hpp"
#include "model/unicode_norm.hpp"

using namespace halfbyte;
using halfbyte::model::WordPieceConfig;
using halfbyte::model::WordPieceTokenizer;
namespace fs = std::filesystem;

namespace {

// ids = line numbers: 0 [PAD] 1 [UNK] 2 [CLS] 3 [SEP] 4 [MASK] 5 hello 6 world ...
const std::vector<std::string> kVocab = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!", "un", "##aff", "##able",
    "aff", "cafe", "中", "文", "a", "##a", "Hello", "café", "ab", "##b", "x", "y", "z"};

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("hb_wordpiece_" + std::to_string(std::rand()) + "_" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
};

std::string vocab_txt() {
  std::string s;
  for (const auto& t : kVocab) s += t + "\n";
  return s;
}

std::vector<int32_t> ids(std::initializer_list<const char*> toks) {
  std::vector<int32_t> out;
  for (const char* t : toks)
    for (size_t i = 0; i < kVocab.size(); ++i)
      if (kVocab[i] == t) out.push_back(int32_t(i));
  return out;
}

// tokenizer.json with our vocabulary and the given normalizer (JSON text).
std::string tokenizer_json(const std::string& normalizer, const std::string& model_type = "WordPiece") {
  std::string vocab;
  for (size_t i = 0; i < kVocab.size(); ++i) {
    std::string esc;
    for (char c : kVocab[i]) esc += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    vocab += (i ? "," : "") + std::string("\"") + esc + "\":" + std::to_string(i);
  }
  return R"({"version":"1.0","added_tokens":[{"id":0,"content":"[PAD]","special":true,"normalized":false},
    {"id":2,"content":"[CLS]","special":true,"normalized":false},{"id":3,"content":"[SEP]","special":true,"normalized":false}],
    "normalizer":)" + normalizer + R"(,"pre_tokenizer":{"type":"BertPreTokenizer"},
    "post_processor":{"type":"BertProcessing","sep":["[SEP]",3],"cls":["[CLS]",2]},
    "model":{"type":")" + model_type + R"(","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,
    "vocab":{)" + vocab + "}}}";
}

template <class F>
void require_error(F&& f, ErrorKind kind, const std::string& part) {
  try {
    f();
    FAIL("expected an error containing '" << part << "'");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.kind() == kind);
    CHECK(std::string(e.what()).find(part) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("wordpiece: basic tokenizer and greedy longest match", "[wordpiece]") {
  TempDir d;
  const auto t = WordPieceTokenizer::from_vocab_txt(d.write("vocab.txt", vocab_txt()));
  CHECK(t.n_vocab() == int32_t(kVocab.size()));
  CHECK(t.cls() == 2);
  CHECK(t.sep() == 3);
  CHECK(t.unk() == 1);
  CHECK(t.pad() == 0);
  // Lower-cased, punctuation split off, whitespace of any kind separates.
  CHECK(t.encode("Hello,\tWORLD!").ids == ids({"[CLS]", "hello", ",", "world", "!", "[SEP]"}));
  CHECK(t.encode("Hello,\tWORLD!").type_ids == std::vector<int32_t>(6, 0));
  // Longest match from the start, "##" pieces after it.
  CHECK(t.tokenize("unaffable") == ids({"un", "##aff", "##able"}));
  CHECK(t.tokenize("aaa") == ids({"a", "##a", "##a"}));
  CHECK(t.tokenize("abbb") == ids({"ab", "##b", "##b"}));
  // A gap anywhere makes the whole word [UNK]; other words are unaffected.
  CHECK(t.tokenize("unaffablex hello") == ids({"[UNK]", "hello"}));
  // 100 characters still go through WordPiece, 101 are [UNK] without trying.
  CHECK(t.tokenize(std::string(100, 'a')).size() == 100);
  CHECK(t.tokenize(std::string(101, 'a')) == ids({"[UNK]"}));
  // Accents stripped (NFD, then nonspacing marks dropped) because lowercase is on.
  CHECK(t.tokenize("CAFÉ cafe\xCC\x81") == ids({"cafe", "cafe"}));
  // CJK ideographs are words of their own even without spaces.
  CHECK(t.tokenize("中文a") == ids({"中", "文", "a"}));
  // Control characters, U+0000, U+FFFD and invalid UTF-8 vanish (joining words);
  // zero-width space (Cf) too.
  CHECK(t.tokenize(std::string("hel\x01lo wor\xEF\xBF\xBDld \xFFx\xE2\x80\x8By") + std::string(1, '\0')) ==
        ids({"hello", "world", "[UNK]"}));
  CHECK(t.words(std::string("x\xE2\x80\x8By")) == std::vector<std::string>{"xy"});
  // Special tokens in the text are kept whole, not split at [ and ].
  CHECK(t.tokenize("x[MASK]y [CLS]") == ids({"x", "[MASK]", "y", "[CLS]"}));
  CHECK(t.words("x[mask]") == std::vector<std::string>{"x", "[", "mask", "]"});
  CHECK(t.encode("").ids == ids({"[CLS]", "[SEP]"}));
}

TEST_CASE("wordpiece: pairs, token types and truncation", "[wordpiece]") {
  TempDir d;
  const auto t = WordPieceTokenizer::from_vocab_txt(d.write("vocab.txt", vocab_txt()));
  const auto e = t.encode_pair("hello world", "x y z");
  CHECK(e.ids == ids({"[CLS]", "hello", "world", "[SEP]", "x", "y", "z", "[SEP]"}));
  CHECK(e.type_ids == std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1});
  // Single: the text is cut, [CLS] and [SEP] stay.
  CHECK(t.encode("x y z x y z", 5).ids == ids({"[CLS]", "x", "y", "z", "[SEP]"}));
  // longest_first as tokenizers does it: the shorter side keeps up to half the room
  // (rounded down), the longer side the rest.
  CHECK(t.encode_pair("x y z", "x y z", 7).ids == ids({"[CLS]", "x", "y", "[SEP]", "x", "y", "[SEP]"}));
  CHECK(t.encode_pair("x y z", "x y z x y z", 8).ids == ids({"[CLS]", "x", "y", "[SEP]", "x", "y", "z", "[SEP]"}));
  CHECK(t.encode_pair("x", "x y z x y z", 6).ids == ids({"[CLS]", "x", "[SEP]", "x", "y", "[SEP]"}));
  CHECK(t.encode_pair("x y z x", "y z", 4).ids == ids({"[CLS]", "x", "[SEP]", "[SEP]"}));
  CHECK(t.encode_pair("x y z", "x y z", 6).ids == ids({"[CLS]", "x", "[SEP]", "x", "y", "[SEP]"}));
  require_error([&] { t.encode("x", 1); }, ErrorKind::InvalidArgument, "max_length 1");
  require_error([&] { t.encode_pair("x", "y", 2); }, ErrorKind::InvalidArgument, "special tokens alone take 3");
}

TEST_CASE("wordpiece: tokenizer.json normalizer options", "[wordpiece]") {
  TempDir d;
  {  // cased: no lower-casing, no accent stripping
    const auto t = WordPieceTokenizer::from_tokenizer_json(d.write(
        "tokenizer.json", tokenizer_json(R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,
        "strip_accents":null,"lowercase":false})")));
    CHECK(t.tokenize("Hello hello café") == ids({"Hello", "hello", "café"}));
    CHECK(t.encode("x").ids == ids({"[CLS]", "x", "[SEP]"}));
    CHECK(!t.config().lowercase);
  }
  {  // lower-cased, accents kept
    const auto t = WordPieceTokenizer::from_tokenizer_json(d.write(
        "tokenizer.json", tokenizer_json(R"({"type":"BertNormalizer","strip_accents":false,"lowercase":true})")));
    CHECK(t.tokenize("CAFÉ") == ids({"café"}));
  }
  {  // the folder prefers tokenizer.json over vocab.txt
    d.write("vocab.txt", vocab_txt());
    const auto t = WordPieceTokenizer::from_folder(d.path.string());
    CHECK(t.tokenize("CAFÉ") == ids({"café"}));  // vocab.txt's defaults would strip the accent
  }
}

TEST_CASE("wordpiece: vocab.txt with tokenizer_config.json", "[wordpiece]") {
  TempDir d;
  d.write("vocab.txt", vocab_txt());
  d.write("tokenizer_config.json", R"({"do_lower_case": false, "model_max_length": 128, "unk_token": "[UNK]"})");
  const auto t = WordPieceTokenizer::from_folder(d.path.string());
  CHECK(t.tokenize("Hello café") == ids({"Hello", "café"}));
  CHECK(t.model_max_length() == 128);
}

TEST_CASE("wordpiece: malformed files are errors naming the problem", "[wordpiece]") {
  TempDir d;
  require_error([&] { WordPieceTokenizer::from_vocab_txt(d.write("v1.txt", "a\nb\n[CLS]\n[SEP]\n")); },
                ErrorKind::Format, "unknown token '[UNK]' is not in the vocabulary");
  require_error([&] { WordPieceTokenizer::from_vocab_txt(d.write("v2.txt", "[UNK]\na\n")); }, ErrorKind::Format,
                "should be in the vocabulary");
  require_error([&] { WordPieceTokenizer::from_vocab_txt((d.path / "missing.txt").string()); }, ErrorKind::Io,
                "missing.txt");
  require_error(
      [&] { WordPieceTokenizer::from_tokenizer_json(d.write("t1.json", tokenizer_json("null", "BPE"))); },
      ErrorKind::Unsupported, "model type 'BPE' is not WordPiece");
  require_error(
      [&] { WordPieceTokenizer::from_tokenizer_json(d.write("t2.json", tokenizer_json(R"({"type":"NFKC"})"))); },
      ErrorKind::Unsupported, "'NFKC'");
  require_error([&] { WordPieceTokenizer::from_tokenizer_json(d.write("t3.json", "{\"model\": [1, 2")); },
                ErrorKind::Format, "not valid JSON");
  std::string bad = tokenizer_json("null");
  bad.replace(bad.find("\"hello\":5"), 9, "\"hello\":-5");
  require_error([&] { WordPieceTokenizer::from_tokenizer_json(d.write("t4.json", bad)); }, ErrorKind::Format,
                "vocab['hello'] = -5 is not a token id");
  std::string dup = tokenizer_json("null");
  dup.replace(dup.find("\"hello\":5"), 9, "\"hello\":6");
  require_error([&] { WordPieceTokenizer::from_tokenizer_json(d.write("t5.json", dup)); }, ErrorKind::Format,
                "id 6 is given to both");
  require_error([&] { WordPieceTokenizer::from_folder(d.path.string() + "/nothing"); }, ErrorKind::Io,
                "no tokenizer.json nor vocab.txt");
  // Found with the fuzz_hf_tokenizer harness (libFuzzer's 512 MB allocation
  // limit): an id far past the file's entries made a table of 2^24 tokens (512 MB)
  // out of a few bytes. Ids stay below the count of entries (25 in vocab, 3 added
  // tokens); a hole below that is still an unnamed id.
  std::string sparse = tokenizer_json("null");
  sparse.replace(sparse.find("\"z\":24"), 6, "\"z\":16777215");
  require_error([&] { WordPieceTokenizer::from_tokenizer_json(d.write("t6.json", sparse)); }, ErrorKind::Format,
                "token 'z' has id 16777215, but the file has 28 tokens");
  std::string hole = tokenizer_json("null");
  hole.replace(hole.find("\"z\":24"), 6, "\"z\":27");
  const auto t = WordPieceTokenizer::from_tokenizer_json(d.write("t7.json", hole));
  CHECK(t.n_vocab() == 28);
  CHECK(t.token_id("z") == 27);
  CHECK(t.token_text(24).empty());
}

TEST_CASE("unicode: NFD, combining classes, nonspacing marks, lower case", "[wordpiece][unicode]") {
  namespace uc = halfbyte::model::unicode;
  std::u32string s = U"\u00E9\uAC01\u1E69";  // é, Hangul GAG, s with dot below and dot above
  uc::to_nfd(s);
  CHECK(s == U"e\u0301\u1100\u1161\u11A8s\u0323\u0307");
  std::u32string r = U"a\u0301\u0316";  // acute (230) before grave below (220): reordered
  uc::to_nfd(r);
  CHECK(r == U"a\u0316\u0301");
  CHECK(uc::combining_class(0x301) == 230);
  CHECK(uc::combining_class('a') == 0);
  CHECK(uc::is_nonspacing_mark(0x301));
  CHECK(uc::is_nonspacing_mark(0x345));
  CHECK(!uc::is_nonspacing_mark('a'));
  CHECK(!uc::is_nonspacing_mark(0x903));  // Mc
  std::u32string low;
  for (char32_t c : std::u32string(U"AÉΣİẞ")) uc::append_lower(uint32_t(c), low);
  CHECK(low == U"aéσi\u0307ß");
}
