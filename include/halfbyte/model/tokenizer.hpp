// Tokenizers of Llama-family GGUF models, read from the file's tokenizer.ggml.*
// metadata and matching llama.cpp's llama_tokenize / llama_detokenize:
//
// - "llama": SentencePiece BPE (Llama 1/2, TinyLlama, Mistral). Spaces become
//   U+2581, a space is prepended to the text, the adjacent pair with the highest
//   score is merged until none is left, and characters without a token fall back
//   to <0xNN> byte tokens.
// - "gpt2": byte-level BPE (GPT-2, SmolLM2, Qwen2, Llama 3). The text is split
//   into words by the pre-tokenizer named in tokenizer.ggml.pre, every byte is
//   mapped to a printable stand-in character, and the merges are applied in rank
//   order within each word.
//
// Pre-tokenizers (tokenizer.ggml.pre), each with llama.cpp's regexes and flags:
//   "gpt-2" (also phi-2, mpt, olmo, jais, gigachat, exaone4): GPT-2's regex;
//   "llama3" / "llama-v3" / "llama-bpe" (also falcon3, pixtral; dbrx and
//     smaug-bpe without ignore_merges / add_bos): Llama 3's regex, digits in 3s;
//   "qwen2" (also deepseek-r1-qwen, megrez, stablelm2): Llama 3's with single digits;
//   "smollm" (also starcoder, refact, codeshell, command-r): single digits, then GPT-2's;
//   "default" or no key: llama.cpp's default sequence (punctuation runs, GPT-2's
//     regex, digit runs, groups of three ASCII digits).
// Other names are refused with ErrorKind::Unsupported.
//
// Every count, id and index read from the file is checked; a malformed or
// hostile vocabulary gives halfbyte::Error(ErrorKind::Format) naming the file and
// the field.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace halfbyte::io {
class GgufFile;
}

namespace halfbyte::model {

// "No such token" (e.g. a vocabulary without an unknown token).
inline constexpr int32_t kNoToken = -1;

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,      // BOS, EOS, <|im_start|>, ...: rendered only on request
  UserDefined = 4,  // always matched as a whole in the input, rendered verbatim
  Unused = 5,
  Byte = 6,         // <0xNN>
};

class Tokenizer {
 public:
  enum class Kind { Spm, Bpe };

  // An empty tokenizer (no tokens: encode gives nothing, every id is out of
  // range), to be assigned from from_gguf().
  Tokenizer();

  // Reads the tokenizer.ggml.* metadata of `f`. Throws Error(Format) for a
  // malformed vocabulary and Error(Unsupported) for an unknown model or
  // pre-tokenizer name.
  static Tokenizer from_gguf(const io::GgufFile& f);

  // Text -> token ids. add_special adds BOS/EOS as tokenizer.ggml.add_bos_token /
  // add_eos_token say (defaults: SPM adds BOS; BPE adds nothing, except the
  // llama3 pre-tokenizer which adds BOS). parse_special recognises the text of
  // control tokens (e.g. "<|im_start|>") in `text` and emits their ids;
  // user-defined tokens are always recognised. Invalid UTF-8 is accepted: each
  // invalid byte is a unit of its own (byte tokens / byte-level symbols).
  std::vector<int32_t> encode(std::string_view text, bool add_special = true,
                              bool parse_special = false) const;

  // Token ids -> text, as llama.cpp's detokenize (remove_special = false): the
  // space SPM prepends is removed from the first token; control and unknown
  // tokens render as "" unless `special`; byte-level BPE vocabularies whose
  // pre-tokenizer asks for it (gpt-2, llama3, default) clean up " ," " ." " ?"
  // " !" and some " '" contractions. Throws Error(InvalidArgument) for an id
  // outside [0, n_vocab()).
  std::string decode(const std::vector<int32_t>& ids, bool special = false) const;

  // One token's text as it appears in decoded output (no space removal, no
  // clean-up): for streaming. Control/unknown tokens give "" unless `special`.
  std::string token_to_piece(int32_t id, bool special = false) const;

  // The words the pre-tokenizer splits `text` into, as raw byte strings (BPE).
  // SPM has no pre-tokenizer: the whole text is one word. Special tokens are not
  // looked for. For inspection and tests.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  int32_t n_vocab() const noexcept;
  Kind kind() const noexcept;
  const std::string& pre() const noexcept;  // pre-tokenizer name as read ("" for SPM)
  int32_t bos() const noexcept;  // kNoToken if the vocabulary has none
  int32_t eos() const noexcept;
  int32_t eot() const noexcept;  // end of turn (<|im_end|>, <|eot_id|>, ...) or kNoToken
  int32_t unk() const noexcept;
  int32_t pad() const noexcept;
  bool add_bos() const noexcept;
  bool add_eos() const noexcept;
  // End of generation: EOS, EOT, EOM and the tokens llama.cpp treats so by their
  // text ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", ...).
  bool is_eog(int32_t id) const noexcept;
  // The token's text in the vocabulary (U+2581 / byte-level stand-ins included).
  // Throws Error(InvalidArgument) for an id out of range.
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;
  // Bytes of memory the vocabulary and its lookup tables take (an estimate from
  // their sizes and the standard library's node layouts).
  size_t memory_bytes() const noexcept;

  struct Vocab;  // internal (src/model/tokenizer_impl.hpp)

 private:
  explicit Tokenizer(std::shared_ptr<const Vocab> v) : v_(std::move(v)) {}
  std::shared_ptr<const Vocab> v_;  // immutable: copies share it, threads may encode at once
};

}  // namespace halfbyte::model
