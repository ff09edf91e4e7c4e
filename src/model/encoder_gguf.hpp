// BERT encoders in llama.cpp's GGUF layout (general.architecture "bert"), both
// ways: reading such a file for Encoder::load, and presenting a Hugging Face BERT
// folder in that layout for `halfbyte quantize` to write. Internal.
//
// The layout (as llama.cpp's converter writes it):
//   keys     bert.context_length (max_position_embeddings), bert.embedding_length,
//            bert.feed_forward_length, bert.block_count, bert.attention.head_count,
//            bert.attention.layer_norm_epsilon, bert.attention.causal (false),
//            bert.pooling_type (1 mean, 2 cls; absent: mean),
//            tokenizer.ggml.model "bert", tokenizer.ggml.tokens / token_type,
//            tokenizer.ggml.token_type_count (type_vocab_size), bos (= [CLS]),
//            eos and seperator (= [SEP]), unknown, padding and mask token ids,
//            tokenizer.ggml.normalizer.lowercase / strip_accents
//   tensors  token_embd, position_embd, token_types, token_embd_norm;
//            blk.N.attn_q / attn_k / attn_v / attn_output / attn_output_norm /
//            ffn_up / ffn_down / layer_output_norm; each .weight and (but the
//            tables) .bias
//   vocab    WordPiece pieces in "phantom space" form: a word-initial piece gets
//            U+2581 in front ("hello" -> "\u2581hello"), a continuation piece loses
//            its "##" ("##ing" -> "ing"), control tokens ([CLS], [SEP], [PAD],
//            [UNK], [MASK]: token type 3) stay as they are.
#pragma once

#include <string>

#include "halfbyte/io/gguf.hpp"
#include "halfbyte/model/encoder.hpp"
#include "halfbyte/model/wordpiece.hpp"
#include "model/bert.hpp"

namespace halfbyte::model {

// A regular file that starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

// What Encoder::load needs from a bert GGUF besides its tensors.
struct GgufEncoder {
  EncoderConfig config;  // max_length = bert.context_length; normalize = true (see encoders.md)
  WordPieceTokenizer tokenizer;
  EncoderNames names;    // llama.cpp's tensor names (token_types absent: no token types)
};

// Reads f's metadata and vocabulary. Throws Error(Unsupported) for another
// architecture or tokenizer, a causal or unsupported pooling model; Error(Format)
// for a missing or bad key (named), sizes that do not fit together.
GgufEncoder read_gguf_encoder(const io::GgufFile& f);

// A folder (or a .safetensors file in one) whose config.json says model_type
// "bert" or "distilbert".
bool is_encoder_folder(const std::string& path);

// A Hugging Face BERT folder as a GgufFile in llama.cpp's bert layout: keys and
// vocabulary as above, tensors renamed (pointing into the safetensors files),
// the pooler and pre-training heads dropped. DistilBERT (no llama.cpp
// architecture) and *ForSequenceClassification folders are refused
// (Error(Unsupported)): a head would be silently lost.
io::GgufFile bert_folder_as_gguf(const std::string& path);

// config.json + sentence-transformers files of an encoder folder, as
// Encoder::load reads them (encoder.cpp). `archs`: architectures, for messages.
EncoderConfig read_encoder_folder_config(const std::string& dir, std::string& archs);

}  // namespace halfbyte::model
