// Pre-tokenizers of byte-level BPE vocabularies: hand-written matchers for the
// regexes llama.cpp (and the HF tokenizer.json files) use, over code points
// classified by the Unicode tables. A regex list is applied in sequence: each
// regex splits every piece produced so far into its matches and the gaps
// between them (llama.cpp's unicode_regex_split).
//
// Each matcher works on one piece [b, e) of the decoded text and appends the end
// of every word it finds to `ends`. Lookahead never crosses the piece's end.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "model/tokenizer_impl.hpp"
#include "model/unicode.hpp"

namespace halfbyte::model {

namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kPunctuation;
using unicode::kWhitespace;

constexpr uint32_t kEnd = 0xFFFFFFFFu;  // "code point" past the piece's end

struct Decoded {
  std::vector<uint32_t> cp;
  std::vector<uint8_t> fl;
  std::vector<size_t> off;  // byte offset of each unit, plus the text size
};

Decoded decode_text(std::string_view text) {
  Decoded d;
  d.cp.reserve(text.size());
  d.fl.reserve(text.size());
  d.off.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    const unicode::Unit u = unicode::decode(text.data(), text.size(), i);
    d.cp.push_back(u.cp);
    d.fl.push_back(unicode::flags(u.cp));
    d.off.push_back(i);
    i += u.len;
  }
  d.off.push_back(text.size());
  return d;
}

// A piece of the decoded text with out-of-range reads answered by kEnd / 0.
struct Piece {
  const Decoded& d;
  size_t b, e;
  uint32_t cp(size_t p) const { return p < e ? d.cp[p] : kEnd; }
  uint8_t fl(size_t p) const { return p < e ? d.fl[p] : 0; }
  bool letter(size_t p) const { return fl(p) & kLetter; }
  bool number(size_t p) const { return fl(p) & kNumber; }
  bool space(size_t p) const { return fl(p) & kWhitespace; }
  // [^\s\p{L}\p{N}]
  bool other(size_t p) const { return p < e && !(d.fl[p] & (kLetter | kNumber | kWhitespace)); }
  size_t run_end(size_t p, bool (Piece::*pred)(size_t) const) const {
    while ((this->*pred)(p)) ++p;
    return p;
  }
};

uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// 's 't 're 've 'm 'll 'd at p: the match end, or p if none.
size_t contraction(const Piece& s, size_t p, bool any_case) {
  if (s.cp(p) != '\'') return p;
  auto low = [&](size_t q) { return any_case ? ascii_lower(s.cp(q)) : s.cp(q); };
  const uint32_t c1 = low(p + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return p + 2;
  const uint32_t c2 = low(p + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return p + 3;
  return p;
}

// \s+(?!\S)|\s+ at p (a whitespace run): all of it at the piece's end, else all
// but its last character (which then leads the next word) unless it is alone.
size_t whitespace_run(const Piece& s, size_t p) {
  const size_t q = s.run_end(p, &Piece::space);
  if (q == p) return p + 1;  // not whitespace: a one-character word
  if (q - p > 1 && q < s.e) return q - 1;
  return q;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const Decoded& d, size_t b, size_t e, std::vector<size_t>& ends) {
  const Piece s{d, b, e};
  for (size_t p = b; p < e;) {
    size_t q = contraction(s, p, false);
    if (q == p) {
      const size_t w = (s.cp(p) == ' ') ? p + 1 : p;  // optional leading space
      if (s.letter(w)) q = s.run_end(w, &Piece::letter);
      else if (s.number(w)) q = s.run_end(w, &Piece::number);
      else if (s.other(w)) q = s.run_end(w, &Piece::other);
      else q = whitespace_run(s, p);
    }
    ends.push_back(q);
    p = q;
  }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
void split_llama3(const Decoded& d, size_t b, size_t e, size_t max_digits, std::vector<size_t>& ends) {
  const Piece s{d, b, e};
  auto newline = [&](size_t p) { return s.cp(p) == '\r' || s.cp(p) == '\n'; };
  for (size_t p = b; p < e;) {
    size_t q = contraction(s, p, true);
    if (q != p) {
      ends.push_back(p = q);
      continue;
    }
    const uint32_t c = s.cp(p);
    if (!newline(p) && !s.number(p) && (s.letter(p) || s.letter(p + 1))) {
      ends.push_back(p = s.run_end(p + 1, &Piece::letter));
      continue;
    }
    if (s.number(p)) {
      q = s.run_end(p, &Piece::number);
      while (p < q) {
        p += std::min(max_digits, q - p);
        ends.push_back(p);
      }
      continue;
    }
    const size_t w = (c == ' ') ? p + 1 : p;
    if (s.other(w)) {
      q = s.run_end(w, &Piece::other);
      while (newline(q)) ++q;
      ends.push_back(p = q);
      continue;
    }
    // \s*[\r\n]+ : up to the last newline of the whitespace run.
    q = s.run_end(p, &Piece::space);
    size_t after_newline = p;
    for (size_t k = p; k < q; ++k)
      if (newline(k)) after_newline = k + 1;
    ends.push_back(p = (after_newline > p) ? after_newline : whitespace_run(s, p));
  }
}

// A single-class regex (X+ or a lone X) applied llama.cpp-style: matches and the
// gaps between them are both words.
template <class Pred>
void split_class(const Decoded& d, size_t b, size_t e, bool repeat, Pred pred, std::vector<size_t>& ends) {
  for (size_t p = b; p < e;) {
    size_t q = p;
    if (pred(d.cp[p], d.fl[p])) {
      ++q;
      if (repeat) while (q < e && pred(d.cp[q], d.fl[q])) ++q;
    } else {
      while (q < e && !pred(d.cp[q], d.fl[q])) ++q;
    }
    ends.push_back(p = q);
  }
}

// [0-9][0-9][0-9], leftmost non-overlapping matches; gaps are words too.
void split_ascii_triples(const Decoded& d, size_t b, size_t e, std::vector<size_t>& ends) {
  auto digit = [&](size_t p) { return p < e && d.cp[p] >= '0' && d.cp[p] <= '9'; };
  size_t gap = b;
  for (size_t p = b; p < e;) {
    if (digit(p) && digit(p + 1) && digit(p + 2)) {
      if (gap < p) ends.push_back(p);
      ends.push_back(p + 3);
      gap = p = p + 3;
    } else {
      ++p;
    }
  }
  if (gap < e) ends.push_back(e);
}

template <class Fn>
std::vector<size_t> refine(const std::vector<size_t>& ends, Fn fn) {
  std::vector<size_t> out;
  out.reserve(ends.size() * 2);
  size_t b = 0;
  for (size_t e : ends) {
    if (b < e) fn(b, e, out);
    b = e;
  }
  return out;
}

}  // namespace

std::vector<std::pair<size_t, size_t>> pre_tokenize_ranges(PreType pre, std::string_view text) {
  const Decoded d = decode_text(text);
  std::vector<size_t> ends{d.cp.size()};
  auto gpt2 = [&](size_t b, size_t e, std::vector<size_t>& o) { split_gpt2(d, b, e, o); };
  auto is_number = [](uint32_t, uint8_t f) { return (f & kNumber) != 0; };
  switch (pre) {
    case PreType::Gpt2:
      ends = refine(ends, gpt2);
      break;
    case PreType::Llama3:
    case PreType::Qwen2: {
      const size_t max_digits = pre == PreType::Llama3 ? 3 : 1;
      ends = refine(ends, [&](size_t b, size_t e, std::vector<size_t>& o) { split_llama3(d, b, e, max_digits, o); });
      break;
    }
    case PreType::Smollm:
      ends = refine(ends, [&](size_t b, size_t e, std::vector<size_t>& o) { split_class(d, b, e, false, is_number, o); });
      ends = refine(ends, gpt2);
      break;
    case PreType::Default: {
      // [\p{P}\$\+<=>\^~\|]+
      auto punct = [](uint32_t c, uint8_t f) {
        return (f & kPunctuation) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
               c == '^' || c == '~' || c == '|';
      };
      ends = refine(ends, [&](size_t b, size_t e, std::vector<size_t>& o) { split_class(d, b, e, true, punct, o); });
      ends = refine(ends, gpt2);
      ends = refine(ends, [&](size_t b, size_t e, std::vector<size_t>& o) { split_class(d, b, e, true, is_number, o); });
      ends = refine(ends, [&](size_t b, size_t e, std::vector<size_t>& o) { split_ascii_triples(d, b, e, o); });
      break;
    }
  }
  std::vector<std::pair<size_t, size_t>> ranges;
  ranges.reserve(ends.size());
  size_t b = 0;
  for (size_t e : ends) {
    if (b < e) ranges.emplace_back(d.off[b], d.off[e]);
    b = e;
  }
  return ranges;
}

}  // namespace halfbyte::model
