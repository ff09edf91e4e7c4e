#include "model/unicode_norm.hpp"

#include <algorithm>
#include <cstddef>

namespace halfbyte::model::unicode {

namespace detail {
// unicode_norm_tables.cpp (layout: the generator's docstring).
extern const uint32_t kNfdKeys[], kNfdSpans[], kNfdPool[], kLowerKeys[], kLowerSpans[], kLowerPool[];
extern const uint32_t kCccRuns[], kMnRuns[];
extern const size_t kNfdKeysCount, kLowerKeysCount, kCccRunsCount, kMnRunsCount;
}  // namespace detail

namespace {

// Hangul syllable decomposition constants (Unicode chapter 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kVCount = 21, kTCount = 28, kSCount = 19 * kVCount * kTCount;

// The mapping of cp in a keys/spans/pool table, or false if it has none.
bool find_mapping(const uint32_t* keys, const uint32_t* spans, const uint32_t* pool, size_t n, uint32_t cp,
                  const uint32_t** first, uint32_t* len) {
  const uint32_t* it = std::lower_bound(keys, keys + n, cp);
  if (it == keys + n || *it != cp) return false;
  const uint32_t span = spans[it - keys];
  *first = pool + (span >> 3);
  *len = span & 7u;
  return true;
}

}  // namespace

uint8_t combining_class(uint32_t cp) noexcept {
  if (cp < 0x300) return 0;  // fast path: nothing below U+0300 combines
  const uint32_t* begin = detail::kCccRuns;
  const uint32_t* it = std::upper_bound(begin, begin + detail::kCccRunsCount, (cp << 8) | 0xFFu);
  return uint8_t(it[-1] & 0xFFu);  // run 0 starts at U+0000
}

bool is_nonspacing_mark(uint32_t cp) noexcept {
  if (cp < 0x300) return false;
  const uint32_t* begin = detail::kMnRuns;
  const uint32_t* it = std::upper_bound(begin, begin + detail::kMnRunsCount, cp);
  return ((it - begin) & 1) == 1;  // status flips at each entry, starting from not-Mn
}

void to_nfd(std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (const char32_t c : s) {
    const uint32_t cp = uint32_t(c);
    const uint32_t* m;
    uint32_t len;
    if (cp - kSBase < kSCount) {
      const uint32_t i = cp - kSBase;
      out += char32_t(kLBase + i / (kVCount * kTCount));
      out += char32_t(kVBase + (i % (kVCount * kTCount)) / kTCount);
      if (i % kTCount) out += char32_t(kTBase + i % kTCount);
    } else if (cp >= 0xC0 && find_mapping(detail::kNfdKeys, detail::kNfdSpans, detail::kNfdPool,
                                          detail::kNfdKeysCount, cp, &m, &len)) {
      for (uint32_t k = 0; k < len; ++k) out += char32_t(m[k]);
    } else {
      out += c;
    }
  }
  // Canonical ordering: each run of non-starters sorted stably by class.
  for (size_t i = 0; i < out.size();) {
    if (combining_class(uint32_t(out[i])) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < out.size() && combining_class(uint32_t(out[j])) != 0) ++j;
    if (j - i > 1)
      std::stable_sort(out.begin() + std::ptrdiff_t(i), out.begin() + std::ptrdiff_t(j),
                       [](char32_t a, char32_t b) { return combining_class(uint32_t(a)) < combining_class(uint32_t(b)); });
    i = j;
  }
  s.swap(out);
}

void append_lower(uint32_t cp, std::u32string& out) {
  if (cp < 0x80) {
    out += char32_t(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  const uint32_t* m;
  uint32_t len;
  if (find_mapping(detail::kLowerKeys, detail::kLowerSpans, detail::kLowerPool, detail::kLowerKeysCount, cp, &m,
                   &len))
    for (uint32_t k = 0; k < len; ++k) out += char32_t(m[k]);
  else
    out += char32_t(cp);
}

}  // namespace halfbyte::model::unicode
