// Picks the next token from logits: greedy, or temperature with top-k, top-p,
// min-p and a repetition penalty. Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "halfbyte/model/model.hpp"

namespace halfbyte::model {

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // logits [n_vocab] (modified in place); recent: the tokens seen so far.
  int32_t sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& recent);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace halfbyte::model
