// Importance matrix collection (method: include/halfbyte/model/imatrix.hpp).
#include <algorithm>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/model/imatrix.hpp"
#include "halfbyte/model/model.hpp"
#include "halfbyte/model/tokenizer.hpp"

namespace halfbyte::model {

quant::Imatrix collect_imatrix(Model& m, const std::string& text, const ImatrixOptions& opts) {
  const int64_t n_ctx = opts.n_ctx;
  if (n_ctx < 2) throw_invalid("imatrix: ctx must be at least 2, got ", n_ctx);
  if (m.n_ctx() < n_ctx)
    throw_invalid("imatrix: the model was loaded with a context of ", m.n_ctx(), " tokens, less than ctx ", n_ctx);
  if (opts.max_chunks < 0) throw_invalid("imatrix: max_chunks must be >= 0, got ", opts.max_chunks);
  const std::vector<int32_t> tokens = m.tokenize(text, /*add_special=*/true);
  int64_t n_chunk = int64_t(tokens.size()) / n_ctx;
  if (n_chunk == 0)
    throw_invalid("imatrix: the text has ", tokens.size(), " tokens, fewer than one chunk of ctx ", n_ctx);
  if (opts.max_chunks > 0) n_chunk = std::min(n_chunk, opts.max_chunks);
  const Tokenizer& tok = m.tokenizer();
  const bool add_bos = tok.add_bos() && tok.bos() >= 0;

  quant::Imatrix im;
  im.chunk_size = n_ctx;
  im.covariance = opts.covariance;
  if (!opts.dataset.empty()) im.datasets.push_back(opts.dataset);
  // Stop collecting however this ends (an exception from eval included).
  struct Detach {
    Model& m;
    ~Detach() {
      m.collect_activations(nullptr);
      m.reset();
    }
  } detach{m};
  m.collect_activations(&im);
  for (int64_t c = 0; c < n_chunk; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    if (add_bos) chunk[0] = tok.bos();
    m.reset();
    m.eval(chunk, /*all_logits=*/true);  // all logits: the output head sees every token, as in llama.cpp
    im.chunk_count = c + 1;
    if (opts.progress && !opts.progress(c + 1, n_chunk)) break;
  }
  return im;
}

}  // namespace halfbyte::model
