// Unicode normalization pieces that BERT's text normalizer uses (accent stripping
// = NFD then dropping nonspacing marks; lower-casing), from the tables that
// gen_unicode_norm_tables.py generates out of Python's unicodedata.
#pragma once

#include <cstdint>
#include <string>

namespace halfbyte::model::unicode {

// Replaces `s` by its canonical decomposition (NFD): every code point decomposed
// recursively (Hangul syllables by arithmetic), then runs of combining characters
// sorted stably by canonical combining class.
void to_nfd(std::u32string& s);

// Canonical combining class (0 for starters).
uint8_t combining_class(uint32_t cp) noexcept;

// General category Mn (nonspacing mark): what accent stripping drops after NFD.
bool is_nonspacing_mark(uint32_t cp) noexcept;

// Appends the full, context-free lower-case mapping of cp (usually one code
// point; U+0130 gives two), or cp itself if it has none.
void append_lower(uint32_t cp, std::u32string& out);

}  // namespace halfbyte::model::unicode
