#include "model/unicode.hpp"

#include <algorithm>
#include <array>

namespace halfbyte::model::unicode {

namespace {

Category lookup_category(uint32_t cp) noexcept {
  // Last run whose first code point is <= cp.
  const uint32_t* begin = detail::kCategoryRuns;
  const uint32_t* end = begin + detail::kCategoryRunCount;
  const uint32_t key = (cp << 3) | 7u;
  const uint32_t* it = std::upper_bound(begin, end, key);
  return static_cast<Category>(it[-1] & 7u);  // run 0 starts at U+0000
}

uint8_t compute_flags(uint32_t cp) noexcept {
  uint8_t f = 0;
  switch (category(cp)) {
    case Category::Letter: f |= kLetter; break;
    case Category::Number: f |= kNumber; break;
    case Category::Punctuation: f |= kPunctuation; break;
    default: break;
  }
  if (is_whitespace(cp)) f |= kWhitespace;
  return f;
}

// Flags of U+0000..U+00FF, the hot range for most text.
struct Latin1Flags {
  std::array<uint8_t, 256> f{};
  Latin1Flags() {
    for (uint32_t c = 0; c < 256; ++c) f[c] = compute_flags(c);
  }
};

struct ByteMap {
  std::array<uint32_t, 256> cp{};
  std::array<std::string, 256> utf8;
  std::array<int16_t, 512> back{};  // stand-ins are all < U+0200
  ByteMap() {
    back.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      cp[size_t(b)] = printable ? uint32_t(b) : uint32_t(256 + extra++);
    }
    for (int b = 0; b < 256; ++b) {
      append_utf8(utf8[size_t(b)], cp[size_t(b)]);
      back[cp[size_t(b)]] = int16_t(b);
    }
  }
};

const Latin1Flags& latin1() {
  static const Latin1Flags t;
  return t;
}

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

Category category(uint32_t cp) noexcept {
  if (cp == kInvalidByte) return Category::Symbol;
  if (cp > 0x10FFFF) return Category::Undefined;
  return lookup_category(cp);
}

bool is_whitespace(uint32_t cp) noexcept {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp < 0x85) return false;
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
    case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

uint8_t flags(uint32_t cp) noexcept {
  if (cp < 256) return latin1().f[cp];
  return compute_flags(cp);
}

Unit decode(const char* s, size_t n, size_t i) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(s);
  const uint32_t b0 = u[i];
  if (b0 < 0x80) return {b0, 1};
  size_t need;
  uint32_t cp;
  uint32_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1; cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2; cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;        // no overlong forms
    else if (b0 == 0xED) hi = 0x9F;   // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3; cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;        // no overlong forms
    else if (b0 == 0xF4) hi = 0x8F;   // <= U+10FFFF
  } else {
    return {kInvalidByte, 1};
  }
  if (n - i <= need) return {kInvalidByte, 1};
  for (size_t k = 1; k <= need; ++k) {
    const uint32_t b = u[i + k];
    if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return {kInvalidByte, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, uint32_t(need + 1)};
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | ((cp >> 18) & 0x07));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

uint32_t byte_to_cp(uint8_t b) noexcept { return byte_map().cp[b]; }

const std::string& byte_to_utf8(uint8_t b) noexcept { return byte_map().utf8[b]; }

int cp_to_byte(uint32_t cp) noexcept {
  return cp < 512 ? byte_map().back[cp] : -1;
}

}  // namespace halfbyte::model::unicode
