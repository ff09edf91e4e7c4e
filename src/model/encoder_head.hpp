// Sequence classification heads on the encoder (BertForSequenceClassification:
// pooler dense + tanh, classifier; DistilBertForSequenceClassification:
// pre_classifier + ReLU, classifier; both on the first token), their
// configuration (id2label, problem_type) and the score functions. Internal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "halfbyte/io/gguf.hpp"
#include "halfbyte/model/encoder.hpp"
#include "io/hf_json.hpp"
#include "model/linear.hpp"

namespace halfbyte::model {

// If config.json's architectures names e.arch's *ForSequenceClassification,
// fills e.labels (id2label, else num_labels, else 2 "LABEL_<i>") and
// e.problem_type; otherwise leaves e.labels empty. Returns architectures as
// text for messages ("[BertModel]", "(none)").
std::string read_head_config(const io::hfjson::json& c, const std::string& file, EncoderConfig& e);

class SequenceHead {
 public:
  // The head's tensors in f (weights kept fp32: they are small); prefix is the
  // encoder's ("", "bert.", "distilbert.").
  SequenceHead(const io::GgufFile& f, const EncoderConfig& c, const std::string& prefix, int n_threads);

  // first [n, D]: each sequence's first-token hidden state -> logits [n, n_labels].
  void forward(const float* first, int64_t n, float* logits) const;

 private:
  Linear pre_, out_;
  bool tanh_ = true;
  int n_threads_ = 1;
};

// In place on logits [n, n_labels]; Auto resolved by problem_type.
void apply_score_function(ScoreFunction f, ProblemType p, int64_t n_labels, float* x, int64_t n);

}  // namespace halfbyte::model
