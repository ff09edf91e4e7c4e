#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>

#include "halfbyte/core/error.hpp"

namespace halfbyte::model {

Sampler::Sampler(const SamplingParams& p) : p_(p) {
  if (!(p.temperature >= 0.0f)) throw_invalid("sampling: temperature must be >= 0, got ", p.temperature);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) throw_invalid("sampling: top_p must be in (0, 1], got ", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p < 1.0f)) throw_invalid("sampling: min_p must be in [0, 1), got ", p.min_p);
  if (!(p.repeat_penalty > 0.0f)) throw_invalid("sampling: repeat_penalty must be > 0, got ", p.repeat_penalty);
  rng_.seed(p.has_seed ? p.seed : std::random_device{}());
}

int32_t Sampler::sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& recent) {
  if (p_.repeat_penalty != 1.0f && p_.repeat_last_n > 0) {
    const size_t from = recent.size() > size_t(p_.repeat_last_n) ? recent.size() - size_t(p_.repeat_last_n) : 0;
    std::vector<int32_t> seen(recent.begin() + long(from), recent.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {  // as llama.cpp: divide positive logits, multiply negative ones
      float& l = logits[id];
      l = l > 0.0f ? l / p_.repeat_penalty : l * p_.repeat_penalty;
    }
  }
  if (p_.temperature == 0.0f) return int32_t(std::max_element(logits, logits + n_vocab) - logits);

  cand_.clear();
  for (int64_t i = 0; i < n_vocab; ++i) cand_.emplace_back(logits[i], int32_t(i));
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = cand_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < keep) {
    keep = size_t(p_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + long(keep), cand_.end(), by_logit);
    cand_.resize(keep);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Softmax with temperature over the survivors (sorted, largest first).
  const float mx = cand_[0].first;
  double sum = 0.0;
  for (auto& c : cand_) {
    c.first = std::exp((c.first - mx) / p_.temperature);
    sum += c.first;
  }
  for (auto& c : cand_) c.first = float(c.first / sum);
  if (p_.min_p > 0.0f) {
    const float cut = p_.min_p * cand_[0].first;
    size_t n = 1;
    while (n < cand_.size() && cand_[n].first >= cut) ++n;
    cand_.resize(n);
  }
  if (p_.top_p < 1.0f) {
    double cum = 0.0;
    size_t n = 0;
    while (n < cand_.size()) {
      cum += cand_[n].first;
      ++n;
      if (cum >= p_.top_p) break;
    }
    cand_.resize(n);
  }
  double total = 0.0;
  for (const auto& c : cand_) total += c.first;
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (const auto& c : cand_) {
    r -= c.first;
    if (r <= 0.0) return c.second;
  }
  return cand_.back().second;
}

}  // namespace halfbyte::model
