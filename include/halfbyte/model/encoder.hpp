// BERT-family text encoders (BERT, MiniLM, bge, e5, DistilBERT: one graph)
// loaded from a Hugging Face folder, for sentence embeddings and, with a
// *ForSequenceClassification head, classification and cross-encoder scores.
//
//   auto enc = halfbyte::model::Encoder::load("models/all-MiniLM-L6-v2");
//   std::vector<float> e = enc->embed({"first text", "second one"});  // [2 * dim]
//   auto clf = halfbyte::model::Encoder::load("my-distilbert-sst2");
//   std::vector<float> p = clf->classify({"great film"});  // [1 * n_labels], softmax
//
// A batch of texts runs packed: all their tokens go through the projections and
// the feed-forward layers as one matrix (no padding), attention stays within each
// text, so a text's embedding does not depend on the rest of its batch (to
// rounding of the float GEMM).
//
// The folder: config.json (model_type "bert" or "distilbert"), model.safetensors (F32, F16 or
// BF16; sharded too), tokenizer.json or vocab.txt (+ tokenizer_config.json), and
// sentence-transformers' files if present: 1_Pooling/config.json (mean or CLS
// pooling; default mean), modules.json (a Normalize module: embeddings are L2
// normalized), sentence_bert_config.json (max_seq_length).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "halfbyte/model/wordpiece.hpp"

namespace halfbyte::model {

enum class Pooling { Mean, Cls };

// config.json's problem_type of a classification head.
enum class ProblemType {
  SingleLabel,  // "single_label_classification" (default for > 1 label): softmax
  MultiLabel,   // "multi_label_classification": sigmoid per label
  Regression,   // "regression" (default for 1 label, e.g. cross-encoders): raw logits
};

// What classify() applies to the logits.
enum class ScoreFunction {
  Auto,     // per problem_type: softmax, sigmoid or none (a one-label head: none)
  Softmax,
  Sigmoid,
  None,
};

struct EncoderConfig {
  std::string arch = "bert";  // "bert" or "distilbert"
  int64_t n_vocab = 0;
  int64_t n_embd = 0;       // hidden size = embedding dimension
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_ff = 0;         // intermediate size
  int64_t n_positions = 0;  // max_position_embeddings
  int64_t n_types = 0;      // type_vocab_size (DistilBERT: 0, no token types)
  float ln_eps = 1e-12f;
  int64_t max_length = 0;   // tokens per text, [CLS] and [SEP] included (longer texts are truncated)
  Pooling pooling = Pooling::Mean;
  bool normalize = false;   // L2-normalize embeddings (sentence-transformers' Normalize)
  // Sequence classification head (config.json architectures names
  // BertForSequenceClassification or DistilBertForSequenceClassification);
  // labels from id2label ("LABEL_<i>" if absent). Empty: no head.
  std::vector<std::string> labels;
  ProblemType problem_type = ProblemType::SingleLabel;
};

// Matmul precision of quantized layers (float weights always run in fp32).
enum class MatmulPrecision {
  Auto,   // int8 activations (asymmetric where the ISA has that kernel: avx512),
          // except for the two layers fed by LayerNorm outputs (query/key/value and
          // the FFN's first layer): their outlier channels lose too much in plain
          // int8, so those run with ops::Precision::NoInt8 (int16 activations on
          // avx2/avx512, bf16 tiles on AMX); on avx512 (no AMX) they run on
          // asymmetric int8 instead: query/key/value with each text's first token
          // recomputed on int16, the FFN's first layer when it was smoothed at load
          // (weights quantized here from float)
  Int,    // symmetric int8 activations everywhere (fastest where int8 is plain int8)
  Float,  // fp32 activations against dequantized weights everywhere
};

struct EncoderOptions {
  // Weight matrices: "f32" keeps them float; a halfbyte format name ("q8_0",
  // "q4_0", "q4_1", "int4_g64", ...) quantizes them at load (error-minimising
  // scale search). Embedding tables, biases and LayerNorms stay float.
  std::string dtype = "q8_0";
  int n_threads = 0;          // 0: halfbyte::num_threads()
  MatmulPrecision precision = MatmulPrecision::Auto;
  int64_t max_length = 0;     // 0: the model's (sentence_bert_config.json, else max_position_embeddings)
};

class Encoder {
 public:
  // Throws Error(Io) for a missing file, Error(Format) for a malformed one (config,
  // tensor missing or of the wrong shape), Error(Unsupported) for another model type.
  static std::unique_ptr<Encoder> load(const std::string& path, const EncoderOptions& opts = {});
  ~Encoder();

  const EncoderConfig& config() const noexcept;
  const WordPieceTokenizer& tokenizer() const noexcept;
  int64_t dim() const noexcept { return config().n_embd; }

  // Ids with [CLS] and [SEP], truncated to max_length.
  Encoding tokenize(std::string_view text) const;
  Encoding tokenize_pair(std::string_view a, std::string_view b) const;

  // One embedding per text, row-major [texts.size() * dim()]. normalize: -1 as
  // the model says (modules.json), 0 no, 1 L2-normalize. batch_size texts (at
  // most ~8k tokens) run per packed forward pass. An empty text is [CLS] [SEP].
  // Safe to call from several threads at once (each call has its own scratch).
  // progress, if set, is called on the calling thread after each packed batch with
  // (texts done, texts.size()), done increasing to texts.size(); returning false
  // cancels: Error(Runtime) "embed: cancelled after <done> of <total> texts".
  using EmbedProgress = std::function<bool(int64_t done, int64_t total)>;
  std::vector<float> embed(const std::vector<std::string>& texts, int normalize = -1, int batch_size = 64,
                           const EmbedProgress& progress = {}) const;

  // Last hidden states of pre-tokenized sequences, packed: [sum of lengths * dim()].
  std::vector<float> hidden_states(const std::vector<Encoding>& seqs) const;

  // Classification (a *ForSequenceClassification folder; otherwise Error(Unsupported)).
  // Labels in the order of the logits (config.json id2label).
  const std::vector<std::string>& labels() const noexcept { return config().labels; }
  int64_t n_labels() const noexcept { return int64_t(config().labels.size()); }
  // Raw logits [texts.size() * n_labels()] of texts, or of pre-tokenized
  // sequences (tokenize / tokenize_pair: sentence pairs with token types).
  std::vector<float> logits(const std::vector<std::string>& texts, int batch_size = 64) const;
  std::vector<float> logits(const std::vector<Encoding>& seqs, int batch_size = 64) const;
  // The logits through f: Auto is softmax (single-label), sigmoid (multi-label)
  // or nothing (regression; a one-label head, whose logit is a relevance score).
  std::vector<float> classify(const std::vector<std::string>& texts, ScoreFunction f = ScoreFunction::Auto,
                              int batch_size = 64) const;
  std::vector<float> classify(const std::vector<Encoding>& seqs, ScoreFunction f = ScoreFunction::Auto,
                              int batch_size = 64) const;
  // Cross-encoder relevance of each passage to the query: the one-label head's
  // logit of the pair [CLS] query [SEP] passage [SEP] (sigmoid: squashed to (0, 1)).
  std::vector<float> score(std::string_view query, const std::vector<std::string>& passages, bool sigmoid = false,
                           int batch_size = 64) const;

 private:
  Encoder();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halfbyte::model
