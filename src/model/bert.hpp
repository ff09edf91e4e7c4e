// The BERT encoder graph (BERT and DistilBERT: one graph, names from a table):
// weights and the packed forward pass. Internal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "halfbyte/io/gguf.hpp"
#include "halfbyte/model/encoder.hpp"
#include "model/linear.hpp"

namespace halfbyte::model {

// Tensor names of an architecture, after the model's prefix ("", "bert.",
// "distilbert."); per layer after `layer` + N + ".". Architecture as data.
struct EncoderNames {
  const char* prefix;  // of a *For... checkpoint's encoder tensors
  const char* word_emb;
  const char* pos_emb;
  const char* type_emb;  // nullptr: no token types
  const char* emb_ln;
  const char* layer;
  const char *q, *k, *v, *attn_out, *ln1, *up, *down, *ln2;  // linears without ".weight"/".bias"
  // Sequence classification head: pre (dense [D, D] on the first token, then
  // tanh or ReLU), then classifier [n_labels, D]. pre_prefixed: pre is under the prefix.
  const char* head_pre;
  bool head_pre_prefixed;
  bool head_tanh;  // false: ReLU
  const char* head_out;
  const char* head_class;  // the architectures entry with this head
};

// Throws Error(Unsupported) for an arch without a table.
const EncoderNames& encoder_names(const std::string& arch);

struct BertLayer {
  Linear qkv;       // [3 D, D]: query, key, value stacked, with biases
  Linear attn_out;  // [D, D] + bias (plus Wo bv: the value bias folded in at load)
  std::vector<float> ln1_w, ln1_b;
  Linear up;        // [F, D] + bias
  Linear down;      // [D, F] + bias
  std::vector<float> ln2_w, ln2_b;
};

// Several sequences packed back to back: sequence s is tokens [start[s], start[s + 1]).
struct PackedBatch {
  std::vector<int32_t> ids, types;
  std::vector<int64_t> start{0};
  int64_t n_tokens() const noexcept { return start.back(); }
  int64_t n_seqs() const noexcept { return int64_t(start.size()) - 1; }
};

class Bert {
 public:
  // f holds the tensors under their HF names (encoder_names(c.arch)) after `prefix`,
  // or under `names` if given (llama.cpp's GGUF names: encoder_gguf.hpp).
  // float_to: format for the weight matrices (null: keep fp32).
  Bert(const io::GgufFile& f, const EncoderConfig& c, const std::string& prefix, const quant::Format* float_to,
       MatmulPrecision precision, int n_threads, const EncoderNames* names = nullptr);

  // Last hidden states [n_tokens, D] of the packed sequences.
  void forward(const PackedBatch& b, float* out) const;

 private:
  void embed(const PackedBatch& b, float* x) const;
  // qkv: the un-biased projections [T, 3 D]; bq: the query's D biases. The key's
  // bias is left out (it adds q . bk to every score of a query: softmax ignores
  // that) and the value's was folded into the attention output's at load.
  void attention(const PackedBatch& b, const float* qkv, const float* bq, float* ctx) const;
  // qkv [T, 3 D] = x Wqkv^T (no bias), on asymmetric int8 where that wins, with each
  // text's first token on ln_precision_.
  // prologue: produces x's rows as the projection reads them (ops::MatmulOptions::prologue).
  void project_qkv(const PackedBatch& b, const Linear& w, const float* x, float* qkv,
                   const std::function<void(int64_t, int64_t)>& prologue) const;

  // ln_precision_ for a quantized layer; fp32 for a float one (MatmulPrecision: float
  // weights always run in fp32, also where NoInt8 would put them on bf16 tiles).
  ops::Precision ln_precision(const Linear& l) const {
    return l.quantized() ? ln_precision_ : ops::Precision::Float;
  }

  const io::GgufFile& file_;
  EncoderConfig c_;
  ops::Precision other_precision_ = ops::Precision::Auto;  // Wo and Wdown
  ops::Precision ln_precision_ = ops::Precision::Auto;  // Wqkv and Wup (LayerNorm-fed)
  bool auto_precision_ = false;  // MatmulPrecision::Auto: the per-layer choices of forward()
  int n_threads_;
  const io::GgufTensorInfo* word_emb_;
  std::vector<float> pos_emb_, type_emb_, emb_ln_w_, emb_ln_b_;
  std::vector<BertLayer> layers_;
};

}  // namespace halfbyte::model
