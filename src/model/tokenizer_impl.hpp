// Internal state of halfbyte::model::Tokenizer, shared by tokenizer.cpp (loading,
// special tokens, decoding), tokenizer_spm.cpp, tokenizer_bpe.cpp and
// tokenizer_pretok.cpp (the pre-tokenizer splitters).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "halfbyte/model/tokenizer.hpp"

namespace halfbyte::model {

// Pre-tokenizer regex families (llama.cpp's LLAMA_VOCAB_PRE_TYPE_*).
enum class PreType {
  Default,  // [\p{P}\$\+<=>\^~\|]+, then gpt2, then \p{N}+, then [0-9][0-9][0-9]
  Gpt2,     // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Llama3,   // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
            //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Qwen2,    // as Llama3 with \p{N} (single digits)
  Smollm,   // \p{N} (single digits), then gpt2
};

// Splits `text` into pre-tokenizer words; returns their byte ranges [first, second)
// in order, covering the whole text.
std::vector<std::pair<size_t, size_t>> pre_tokenize_ranges(PreType pre, std::string_view text);

struct Tokenizer::Vocab {
  Vocab() { byte_token.fill(kNoToken); }
  Vocab(const Vocab&) = delete;  // id_of holds views into text
  Vocab& operator=(const Vocab&) = delete;

  std::string path;  // for messages
  Kind kind = Kind::Spm;
  std::string pre_name;
  PreType pre = PreType::Default;

  std::vector<std::string> text;  // id -> token text
  std::vector<float> score;
  std::vector<TokenType> type;
  // text -> id; the views point into `text`, which is never resized after loading.
  std::unordered_map<std::string_view, int32_t> id_of;

  int32_t bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken;
  int32_t unk = kNoToken, pad = kNoToken;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = false;  // SPM: prepend " " to text that follows BOS/start/special
  bool clean_spaces = false;      // decode: " ," -> "," etc. (BPE)
  bool ignore_merges = false;     // BPE: a word that is a token is taken whole (llama3)

  // SPM: id of <0xNN> for each byte. BPE: id of each byte's stand-in character.
  std::array<int32_t, 256> byte_token{};

  // BPE merges: (left id << 32 | right id) -> rank and the merged token's id.
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  std::unordered_map<uint64_t, Merge> merges;

  // Tokens looked for in the input before tokenizing (control, user-defined and
  // unknown types), longest text first.
  std::vector<int32_t> specials;
  std::vector<uint8_t> eog;  // per id: 1 if end of generation

  int32_t find(std::string_view s) const {
    const auto it = id_of.find(s);
    return it == id_of.end() ? kNoToken : it->second;
  }
  bool valid(int32_t id) const { return id >= 0 && size_t(id) < text.size(); }
};

// Tokenizes one piece of text that contains no special tokens, appending to out.
// SPM: `text` is already escaped (spaces -> U+2581) and prefixed.
void spm_tokenize(const Tokenizer::Vocab& v, std::string_view text, std::vector<int32_t>& out);
void bpe_tokenize(const Tokenizer::Vocab& v, std::string_view text, std::vector<int32_t>& out);

}  // namespace halfbyte::model
