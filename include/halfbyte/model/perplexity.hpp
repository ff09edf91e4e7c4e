// Perplexity of a model on a text, and its next-token distribution compared with a
// base model's (KL divergence, top-1 agreement), computed as llama.cpp's perplexity
// tool does so the numbers are comparable:
//   the text is tokenized once (BOS first if the model adds one); it is cut into
//   chunks of n_ctx tokens (a partial last chunk is dropped); each chunk is
//   evaluated from an empty cache with its first token replaced by BOS (if the
//   model adds one); positions n_ctx/2 .. n_ctx-2 of each chunk are scored, each
//   predicting the next token: nll = -log softmax(logits)[next].
//   PPL = exp(mean nll), its error exp(mean) * stderr(nll); KL(base || model) per
//   scored position, averaged; top-1 agreement = share of positions where both
//   models' most likely token is the same (error sqrt(p (1 - p) / (n - 1))).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace halfbyte::model {

class Model;

struct PerplexityStats {
  int64_t chunks = 0;       // evaluated so far
  int64_t chunks_total = 0;
  int64_t scored = 0;       // positions scored so far
  double ppl = 0.0, ppl_err = 0.0;
  double nll = 0.0;         // mean negative log-likelihood (nats)
  bool has_base = false;    // the fields below are filled when a base model is given
  double base_ppl = 0.0;
  double kl = 0.0, kl_err = 0.0;         // mean KL(base || model), nats
  double top1 = 0.0, top1_err = 0.0;     // share in [0, 1]
};

struct PerplexityOptions {
  int64_t n_ctx = 512;
  int64_t max_chunks = 0;   // 0: every whole chunk of the text
  // After each chunk, with the running statistics; return false to stop early
  // (the statistics so far are returned).
  std::function<bool(const PerplexityStats&)> progress;
};

// `m` (and `base`, if not null) must have been loaded with n_ctx >= opts.n_ctx and
// share a vocabulary. Throws Error(InvalidArgument) if the text has fewer than
// 2 * n_ctx tokens (llama.cpp's rule), or the vocabularies differ in size.
PerplexityStats perplexity(Model& m, const std::string& text, const PerplexityOptions& opts, Model* base = nullptr);

}  // namespace halfbyte::model
