// WordPiece tokenization as BERT-family encoders use it (BERT, MiniLM, bge, e5),
// matching Hugging Face `tokenizers` (BertNormalizer + BertPreTokenizer +
// WordPiece + the [CLS]/[SEP] template):
//
//   1. added tokens ([CLS], [MASK], ...) are found in the raw text first and kept whole;
//   2. the rest is normalized: control characters, U+0000 and U+FFFD dropped,
//      whitespace made a space; CJK ideographs padded with spaces (one word each);
//      accents stripped (NFD, nonspacing marks dropped) and lower-cased as the
//      tokenizer's configuration says;
//   3. split on whitespace, and around every punctuation character (ASCII
//      punctuation and Unicode P*), each one a word of its own;
//   4. each word greedily cut into the longest vocabulary pieces from its start,
//      later pieces with the "##" prefix; a word of more than 100 characters or one
//      with a part no piece matches becomes [UNK] as a whole;
//   5. [CLS] a [SEP] (token types 0), or [CLS] a [SEP] b [SEP] (b and its [SEP]: 1).
//
// Invalid UTF-8 bytes in the input are dropped like U+FFFD. Loading treats every
// file as hostile: errors are halfbyte::Error naming the file and the field.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace halfbyte::model {

// What the normalizer does (tokenizer.json's BertNormalizer fields, or
// tokenizer_config.json's do_lower_case / strip_accents / tokenize_chinese_chars).
struct WordPieceConfig {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  bool lowercase = true;
  int strip_accents = -1;  // -1: as lowercase (HF's null), 0: no, 1: yes
  int max_input_chars_per_word = 100;
  std::string continuing_prefix = "##";
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
};

// Token ids of one text (or pair) with their token type (segment) ids.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
};

class WordPieceTokenizer {
 public:
  // A Hugging Face model folder: tokenizer.json if present (model type WordPiece),
  // else vocab.txt with tokenizer_config.json (if present) for its options.
  static WordPieceTokenizer from_folder(const std::string& dir);
  static WordPieceTokenizer from_tokenizer_json(const std::string& path);
  // vocab.txt: one token per line, ids by line number. The special tokens named in
  // `cfg` must be in it.
  static WordPieceTokenizer from_vocab_txt(const std::string& path, const WordPieceConfig& cfg = {});
  // A vocabulary given as token texts by id (e.g. from a GGUF file's
  // tokenizer.ggml.tokens, back in vocab.txt's "##" form); `where` names its
  // source in messages. As from_vocab_txt otherwise.
  static WordPieceTokenizer from_vocab(std::vector<std::string> tokens, const WordPieceConfig& cfg,
                                       const std::string& where);

  // Text -> ids with the special tokens. max_length > 0 truncates to that many ids
  // in all (the text's tokens are cut, the special ones kept; a pair is cut as HF's
  // longest_first: the shorter text keeps its tokens up to half the room, the
  // longer one takes the rest);
  // max_length smaller than the special tokens alone is an Error(InvalidArgument).
  Encoding encode(std::string_view text, int64_t max_length = 0) const;
  Encoding encode_pair(std::string_view a, std::string_view b, int64_t max_length = 0) const;

  // Ids without special tokens (added tokens in the text are still recognised).
  std::vector<int32_t> tokenize(std::string_view text) const;
  // The words after normalization and pre-tokenization (steps 1-3), UTF-8.
  std::vector<std::string> words(std::string_view text) const;

  int32_t n_vocab() const noexcept;
  // The id of a token's text, or -1.
  int32_t token_id(std::string_view token) const;
  // Throws Error(InvalidArgument) for an id out of range.
  const std::string& token_text(int32_t id) const;
  int32_t cls() const noexcept;
  int32_t sep() const noexcept;
  int32_t unk() const noexcept;
  int32_t pad() const noexcept;  // -1 if the vocabulary has none
  // Ids of the tokens matched whole in the raw text ([CLS], [SEP], [MASK], ...), ascending.
  std::vector<int32_t> added_ids() const;
  const WordPieceConfig& config() const noexcept;
  // Largest total length the tokenizer files declare (tokenizer_config.json's
  // model_max_length when it is a sane number), or 0.
  int64_t model_max_length() const noexcept;

  struct Impl;  // src/model/tokenizer_wordpiece.cpp

 private:
  explicit WordPieceTokenizer(std::shared_ptr<const Impl> p) : p_(std::move(p)) {}
  std::shared_ptr<const Impl> p_;  // immutable: copies share it, threads may encode at once
};

}  // namespace halfbyte::model
