// Perplexity and KL divergence (method: include/halfbyte/model/perplexity.hpp).
#include "halfbyte/model/perplexity.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/model/model.hpp"
#include "halfbyte/model/tokenizer.hpp"

namespace halfbyte::model {
namespace {

// log softmax of one row of logits, in double (49152-way sums lose digits in float).
void log_softmax(const float* z, int64_t n, std::vector<double>& out) {
  out.resize(size_t(n));
  double mx = z[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(z[i]));
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(z[i]) - mx);
  const double lse = mx + std::log(s);
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(z[i]) - lse;
}

// Running mean and standard error of a sum of samples.
struct Acc {
  double s = 0.0, s2 = 0.0;
  int64_t n = 0;
  void add(double v) {
    s += v;
    s2 += v * v;
    ++n;
  }
  double mean() const { return n ? s / double(n) : 0.0; }
  double stderr_() const {
    if (n < 2) return 0.0;
    const double m = mean(), var = s2 / double(n) - m * m;
    return var > 0 ? std::sqrt(var / double(n - 1)) : 0.0;
  }
};

}  // namespace

PerplexityStats perplexity(Model& m, const std::string& text, const PerplexityOptions& opts, Model* base) {
  const int64_t n_ctx = opts.n_ctx;
  if (n_ctx < 4) throw_invalid("perplexity: ctx must be at least 4, got ", n_ctx);
  if (m.n_ctx() < n_ctx)
    throw_invalid("perplexity: the model was loaded with a context of ", m.n_ctx(), " tokens, less than ctx ", n_ctx);
  const int64_t n_vocab = m.config().n_vocab;
  if (base) {
    if (base->config().n_vocab != n_vocab)
      throw_invalid("perplexity: the base model has ", base->config().n_vocab, " tokens in its vocabulary, the model ",
                    n_vocab, "; KL needs the same vocabulary");
    if (base->n_ctx() < n_ctx)
      throw_invalid("perplexity: the base model was loaded with a context of ", base->n_ctx(), " tokens, less than ctx ",
                    n_ctx);
  }
  const Tokenizer& tok = m.tokenizer();
  const std::vector<int32_t> tokens = m.tokenize(text, /*add_special=*/true);
  if (int64_t(tokens.size()) < 2 * n_ctx)
    throw_invalid("perplexity: the text has ", tokens.size(), " tokens; ctx ", n_ctx, " needs at least ", 2 * n_ctx,
                  " (two chunks)");
  int64_t n_chunk = int64_t(tokens.size()) / n_ctx;
  if (opts.max_chunks > 0) n_chunk = std::min(n_chunk, opts.max_chunks);
  const bool add_bos = tok.add_bos() && tok.bos() >= 0;

  PerplexityStats st;
  st.chunks_total = n_chunk;
  st.has_base = base != nullptr;
  Acc nll, base_nll, kl, same;
  std::vector<double> lp, lq;
  const int64_t first = n_ctx / 2;
  for (int64_t c = 0; c < n_chunk; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    if (add_bos) chunk[0] = tok.bos();
    m.reset();
    const std::vector<float> logits = m.eval(chunk, /*all_logits=*/true);
    std::vector<float> base_logits;
    if (base) {
      base->reset();
      base_logits = base->eval(chunk, true);
    }
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      const int32_t next = tokens[size_t(c * n_ctx + j + 1)];
      const float* z = logits.data() + j * n_vocab;
      log_softmax(z, n_vocab, lq);
      nll.add(-lq[size_t(next)]);
      if (base) {
        const float* zb = base_logits.data() + j * n_vocab;
        log_softmax(zb, n_vocab, lp);
        base_nll.add(-lp[size_t(next)]);
        double d = 0.0;
        for (int64_t i = 0; i < n_vocab; ++i) d += std::exp(lp[size_t(i)]) * (lp[size_t(i)] - lq[size_t(i)]);
        kl.add(std::max(d, 0.0));
        same.add(std::max_element(z, z + n_vocab) - z == std::max_element(zb, zb + n_vocab) - zb ? 1.0 : 0.0);
      }
    }
    st.chunks = c + 1;
    st.scored = nll.n;
    st.nll = nll.mean();
    st.ppl = std::exp(st.nll);
    st.ppl_err = st.ppl * nll.stderr_();
    if (base) {
      st.base_ppl = std::exp(base_nll.mean());
      st.kl = kl.mean();
      st.kl_err = kl.stderr_();
      st.top1 = same.mean();
      st.top1_err = same.n > 1 ? std::sqrt(st.top1 * (1.0 - st.top1) / double(same.n - 1)) : 0.0;
    }
    if (opts.progress && !opts.progress(st)) break;
  }
  m.reset();
  if (base) base->reset();
  return st;
}

}  // namespace halfbyte::model
