// Internal state of halfbyte::model::WordPieceTokenizer, shared by
// tokenizer_wordpiece.cpp (encoding) and tokenizer_wordpiece_load.cpp (files).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "halfbyte/model/wordpiece.hpp"

namespace halfbyte::model {

// A token matched whole in the input before WordPiece runs (tokenizers'
// "added tokens": [CLS], [SEP], [MASK], ... and user additions).
struct AddedToken {
  std::string content;       // as written in the file (UTF-8)
  std::u32string content32;  // if `normalized`: content normalized, as matched
  int32_t id = -1;
  bool normalized = false;  // matched in the normalized text instead of the raw one
  bool single_word = false; // only where no word character touches it
};

// One item of a post-processing template: a special token (ids) or sequence A / B.
struct TemplatePiece {
  int sequence = -1;            // 0: A, 1: B, -1: special
  std::vector<int32_t> ids;     // the special token's ids
  int32_t type_id = 0;
};

struct WordPieceTokenizer::Impl {
  std::string path;  // for messages
  WordPieceConfig cfg;
  std::vector<std::string> tokens;  // by id ("" for an id no entry names)
  std::unordered_map<std::string, int32_t> ids;
  std::vector<AddedToken> added;    // longest first, for leftmost-longest matching
  std::vector<TemplatePiece> single, pair;
  int32_t cls = -1, sep = -1, unk = -1, pad = -1;
  int64_t model_max_length = 0;

  // Normalizes UTF-8 text into code points (BertNormalizer).
  std::u32string normalize(std::string_view text) const;
  // Appends the ids of `text` (no special tokens) to `out`.
  void tokenize(std::string_view text, std::vector<int32_t>& out, std::vector<std::string>* words) const;
};

// Sets `impl.added` order, checks the ids and fills cls/sep/unk/pad from cfg
// (unk, and cls/sep when a template uses them, must exist). Used by both loaders.
void finish_wordpiece(WordPieceTokenizer::Impl& impl);

}  // namespace halfbyte::model
