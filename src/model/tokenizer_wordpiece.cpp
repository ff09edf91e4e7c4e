// WordPiece encoding: BertNormalizer, BertPreTokenizer, greedy longest-match
// WordPiece and the [CLS]/[SEP] template, following Hugging Face tokenizers'
// behaviour (the reference of tests/python/test_wordpiece.py). Loading is in
// tokenizer_wordpiece_load.cpp.
#include <algorithm>
#include <string_view>
#include <type_traits>

#include "halfbyte/core/error.hpp"
#include "model/tokenizer_wordpiece_impl.hpp"
#include "model/unicode.hpp"
#include "model/unicode_norm.hpp"

namespace halfbyte::model {
namespace {

namespace uc = unicode;

// tokenizers' is_chinese_char. Its extension-E range starts at U+2B920 (not
// U+2B820 as in transformers' Python BasicTokenizer): measured, and followed.
bool is_chinese_char(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Cc, Cf, Co, Cs except \t \n \r (which count as whitespace). Unassigned code
// points (Cn) are kept, as tokenizers does.
bool is_control(uint32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  return uc::category(c) == uc::Category::Control;
}

// ASCII punctuation (which includes $ + < = > ^ ` | ~, symbols in Unicode) or P*.
bool is_punctuation(uint32_t c) {
  if (c < 128) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  return uc::category(c) == uc::Category::Punctuation;
}

bool is_word_char(uint32_t c) {
  const auto cat = uc::category(c);
  return c == '_' || cat == uc::Category::Letter || cat == uc::Category::Number || cat == uc::Category::Mark;
}

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const uc::Unit u = uc::decode(s.data(), s.size(), i);
    out += char32_t(u.cp == uc::kInvalidByte ? 0xFFFD : u.cp);  // cleaned away like U+FFFD
    i += u.len;
  }
  return out;
}

std::string encode_utf8(const std::u32string& s, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) uc::append_utf8(out, uint32_t(s[i]));
  return out;
}

// The code point before position i / at position i of s (UTF-8 or UTF-32).
uint32_t cp_before(std::string_view s, size_t i) {
  size_t b = i - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  return uc::decode(s.data(), s.size(), b).cp;
}
uint32_t cp_before(std::u32string_view s, size_t i) { return uint32_t(s[i - 1]); }
uint32_t cp_at(std::string_view s, size_t i) { return uc::decode(s.data(), s.size(), i).cp; }
uint32_t cp_at(std::u32string_view s, size_t i) { return uint32_t(s[i]); }

// Finds the added tokens matched in raw text (Char = char) or in normalized text
// (char32_t) in s, leftmost then longest, and calls text(from, to) for the spans
// between them and token(id) for each match.
template <class Char, class Text, class Tok>
void split_added(const std::vector<AddedToken>& added, std::basic_string_view<Char> s, Text text, Tok token) {
  constexpr bool kNormalized = std::is_same_v<Char, char32_t>;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    const AddedToken* hit = nullptr;
    size_t len = 0;
    for (const AddedToken& a : added) {  // longest first
      if (a.normalized != kNormalized) continue;
      std::basic_string_view<Char> pat;
      if constexpr (kNormalized) pat = a.content32;
      else pat = a.content;
      if (pat.empty() || s.compare(i, pat.size(), pat) != 0) continue;
      if (a.single_word && ((i > 0 && is_word_char(cp_before(s, i))) ||
                            (i + pat.size() < s.size() && is_word_char(cp_at(s, i + pat.size())))))
        continue;
      hit = &a;
      len = pat.size();
      break;
    }
    if (!hit) {
      ++i;
      continue;
    }
    if (i > start) text(start, i);
    token(hit->id);
    i += len;
    start = i;
  }
  if (start < s.size()) text(start, s.size());
}

}  // namespace

std::u32string WordPieceTokenizer::Impl::normalize(std::string_view text) const {
  std::u32string s = decode(text);
  if (cfg.clean_text) {
    std::u32string out;
    out.reserve(s.size());
    for (const char32_t c : s) {
      const uint32_t cp = uint32_t(c);
      if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
      out += uc::is_whitespace(cp) ? U' ' : c;
    }
    s.swap(out);
  }
  if (cfg.handle_chinese_chars) {
    std::u32string out;
    out.reserve(s.size());
    for (const char32_t c : s) {
      if (is_chinese_char(uint32_t(c))) {
        out += U' ';
        out += c;
        out += U' ';
      } else {
        out += c;
      }
    }
    s.swap(out);
  }
  if (cfg.strip_accents < 0 ? cfg.lowercase : cfg.strip_accents > 0) {
    uc::to_nfd(s);
    s.erase(std::remove_if(s.begin(), s.end(), [](char32_t c) { return uc::is_nonspacing_mark(uint32_t(c)); }),
            s.end());
  }
  if (cfg.lowercase) {
    std::u32string out;
    out.reserve(s.size());
    for (const char32_t c : s) uc::append_lower(uint32_t(c), out);
    s.swap(out);
  }
  return s;
}

void WordPieceTokenizer::Impl::tokenize(std::string_view text, std::vector<int32_t>& out,
                                        std::vector<std::string>* words) const {
  // One word (UTF-8) -> pieces: the longest vocabulary entry from the current
  // start, "##"-prefixed after the first; any gap makes the whole word [UNK].
  auto word_piece = [&](const std::u32string& w, size_t from, size_t to) {
    const std::string word = encode_utf8(w, from, to);
    if (words) {
      words->push_back(word);
      return;
    }
    if (to - from > size_t(cfg.max_input_chars_per_word)) {
      out.push_back(unk);
      return;
    }
    // Byte offset of each character boundary.
    std::vector<size_t> cut{0};
    for (size_t i = from; i < to; ++i) {
      std::string c;
      uc::append_utf8(c, uint32_t(w[i]));
      cut.push_back(cut.back() + c.size());
    }
    const size_t mark = out.size();
    std::string piece;
    for (size_t a = 0; a + 1 < cut.size();) {
      size_t b = cut.size() - 1;
      int32_t id = -1;
      for (; b > a; --b) {
        piece.assign(a > 0 ? cfg.continuing_prefix : std::string());
        piece.append(word, cut[a], cut[b] - cut[a]);
        const auto it = ids.find(piece);
        if (it != ids.end()) {
          id = it->second;
          break;
        }
      }
      if (id < 0) {
        out.resize(mark);
        out.push_back(unk);
        return;
      }
      out.push_back(id);
      a = b;
    }
  };
  // Normalized text -> words: whitespace separates, punctuation stands alone.
  auto pre_tokenize = [&](const std::u32string& s, size_t from, size_t to) {
    size_t start = from;
    for (size_t i = from; i < to; ++i) {
      const uint32_t c = uint32_t(s[i]);
      const bool space = uc::is_whitespace(c), punct = !space && is_punctuation(c);
      if (!space && !punct) continue;
      if (i > start) word_piece(s, start, i);
      if (punct) word_piece(s, i, i + 1);
      start = i + 1;
    }
    if (to > start) word_piece(s, start, to);
  };
  auto emit_token = [&](int32_t id) {
    if (words) words->push_back(tokens[size_t(id)]);
    else out.push_back(id);
  };
  split_added<char>(
      added, text,
      [&](size_t from, size_t to) {
        const std::u32string s = normalize(text.substr(from, to - from));
        split_added<char32_t>(added, s, [&](size_t a, size_t b) { pre_tokenize(s, a, b); }, emit_token);
      },
      emit_token);
}

// ---- the public class ------------------------------------------------------------

namespace {

// Number of ids a template adds around its sequences.
size_t added_count(const std::vector<TemplatePiece>& t) {
  size_t n = 0;
  for (const TemplatePiece& p : t)
    if (p.sequence < 0) n += p.ids.size();
  return n;
}

Encoding apply_template(const std::vector<TemplatePiece>& t, const std::vector<int32_t>* seq[2]) {
  Encoding e;
  for (const TemplatePiece& p : t) {
    const std::vector<int32_t>& ids = p.sequence < 0 ? p.ids : *seq[p.sequence];
    e.ids.insert(e.ids.end(), ids.begin(), ids.end());
    e.type_ids.insert(e.type_ids.end(), ids.size(), p.type_id);
  }
  return e;
}

void check_room(const std::string& what, int64_t max_length, size_t specials) {
  if (max_length > 0 && size_t(max_length) < specials)
    throw_invalid(what, ": max_length ", max_length, " leaves no room: the special tokens alone take ", specials);
}

}  // namespace

Encoding WordPieceTokenizer::encode(std::string_view text, int64_t max_length) const {
  std::vector<int32_t> a;
  p_->tokenize(text, a, nullptr);
  const size_t specials = added_count(p_->single);
  check_room("WordPieceTokenizer::encode", max_length, specials);
  if (max_length > 0 && a.size() + specials > size_t(max_length)) a.resize(size_t(max_length) - specials);
  const std::vector<int32_t>* seq[2] = {&a, nullptr};
  return apply_template(p_->single, seq);
}

Encoding WordPieceTokenizer::encode_pair(std::string_view a_text, std::string_view b_text, int64_t max_length) const {
  std::vector<int32_t> a, b;
  p_->tokenize(a_text, a, nullptr);
  p_->tokenize(b_text, b, nullptr);
  const size_t specials = added_count(p_->pair);
  check_room("WordPieceTokenizer::encode_pair", max_length, specials);
  if (max_length > 0) {
    // longest_first, as tokenizers computes it: the shorter side keeps up to half
    // the room (rounded down), the longer side the rest.
    const size_t room = size_t(max_length) - specials;
    if (a.size() + b.size() > room) {
      const bool swap = a.size() > b.size();
      size_t n1 = std::min(a.size(), b.size()), n2 = std::max(a.size(), b.size());
      n2 = n1 > room ? n1 : std::max(n1, room - n1);
      if (n1 + n2 > room) {
        n1 = room / 2;
        n2 = n1 + room % 2;
      }
      if (swap) std::swap(n1, n2);
      a.resize(std::min(a.size(), n1));
      b.resize(std::min(b.size(), n2));
    }
  }
  const std::vector<int32_t>* seq[2] = {&a, &b};
  return apply_template(p_->pair, seq);
}

std::vector<int32_t> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<int32_t> out;
  p_->tokenize(text, out, nullptr);
  return out;
}

std::vector<std::string> WordPieceTokenizer::words(std::string_view text) const {
  std::vector<int32_t> unused;
  std::vector<std::string> w;
  p_->tokenize(text, unused, &w);
  return w;
}

int32_t WordPieceTokenizer::n_vocab() const noexcept { return int32_t(p_->tokens.size()); }

int32_t WordPieceTokenizer::token_id(std::string_view token) const {
  const auto it = p_->ids.find(std::string(token));
  return it == p_->ids.end() ? -1 : it->second;
}

const std::string& WordPieceTokenizer::token_text(int32_t id) const {
  if (id < 0 || size_t(id) >= p_->tokens.size())
    throw_invalid("token id ", id, " is out of range [0, ", p_->tokens.size(), ")");
  return p_->tokens[size_t(id)];
}

int32_t WordPieceTokenizer::cls() const noexcept { return p_->cls; }
int32_t WordPieceTokenizer::sep() const noexcept { return p_->sep; }
int32_t WordPieceTokenizer::unk() const noexcept { return p_->unk; }
int32_t WordPieceTokenizer::pad() const noexcept { return p_->pad; }
const WordPieceConfig& WordPieceTokenizer::config() const noexcept { return p_->cfg; }
std::vector<int32_t> WordPieceTokenizer::added_ids() const {
  std::vector<int32_t> ids;
  for (const AddedToken& a : p_->added) ids.push_back(a.id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}
int64_t WordPieceTokenizer::model_max_length() const noexcept { return p_->model_max_length; }

}  // namespace halfbyte::model
