// Model: file + config + tokenizer + decoder + generation loop.
#include "halfbyte/model/model.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include "core/memory_map.hpp"
#include "halfbyte/core/error.hpp"
#include "halfbyte/io/model_file.hpp"
#include "halfbyte/quant/format.hpp"
#include "halfbyte/model/tokenizer.hpp"
#include "halfbyte/threads.hpp"
#include "model/llama.hpp"
#include "model/sampler.hpp"
#include "model/text_stream.hpp"

namespace halfbyte::model {

struct Model::Impl {
  io::GgufFile file;
  Config config;
  Tokenizer tokenizer;
  std::unique_ptr<Llama> net;
  int64_t n_batch = 256;
  int64_t pos = 0;
  int n_seq = 1;
  std::string chat_template;
  std::vector<float> logits;  // reused by generate(): no allocation per token
  // eval_batch's split of its tokens into Llama::forward's arrays, reused per call.
  std::vector<int32_t> batch_tok, batch_seq;
  std::vector<int64_t> batch_pos, batch_rows;

  // Runs tokens after the cached ones; writes logits (last token, or all) to out.
  void eval_into(Model& self, const std::vector<int32_t>& tokens, bool all_logits, std::vector<float>& out);
};

Model::Model() = default;
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
  if (opts.n_ctx < 0) throw_invalid("load: n_ctx must be >= 0, got ", opts.n_ctx);
  if (opts.n_batch < 1) throw_invalid("load: n_batch must be >= 1, got ", opts.n_batch);
  if (opts.n_seq < 1 || opts.n_seq > 1024) throw_invalid("load: n_seq must be in [1, 1024], got ", opts.n_seq);
  if (opts.n_threads < 0 || opts.n_threads > kMaxThreads)
    throw_invalid("load: n_threads must be in [0, ", kMaxThreads, "], got ", opts.n_threads);
  std::unique_ptr<Model> m(new Model());
  std::optional<quant::Format> float_to;
  if (!opts.quantize.empty() && opts.quantize != "f32" && opts.quantize != "F32")
    float_to = quant::Format::parse(opts.quantize);
  auto impl = std::unique_ptr<Impl>(new Impl{io::open_model_file(path, opts.tokenizer), {}, {}, nullptr, 256, 0, 1, {}, {}, {}, {}, {}, {}});
  if (opts.quantize.empty() && impl->file.format() != "gguf") float_to = quant::Format::q8_0();
  impl->config = config_from_gguf(impl->file);
  impl->tokenizer = Tokenizer::from_gguf(impl->file);
  impl->chat_template = impl->file.get_string("tokenizer.chat_template", "");
  // The tokenizer has its own copy of the vocabulary: free the parsed arrays (MBs).
  for (const char* k : {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                        "tokenizer.ggml.merges"})
    impl->file.erase(k);
  const Config& c = impl->config;
  const int64_t n_ctx = opts.n_ctx > 0 ? opts.n_ctx : std::min<int64_t>(c.n_ctx_train, 4096);
  impl->n_batch = std::min(opts.n_batch, n_ctx);
  const int threads = opts.n_threads > 0 ? opts.n_threads : num_threads();
  impl->net = std::make_unique<Llama>(impl->file, c, n_ctx, impl->n_batch, threads, opts.float_matmul,
                                       float_to ? &*float_to : nullptr, opts.kv_f16, opts.n_seq, opts.progress);
  impl->n_seq = opts.n_seq;
  // The one log line of a load: say which weights were converted.
  std::string converted;
  for (const auto& [type, count] : impl->net->requantized())
    converted += (converted.empty() ? "" : ", ") + std::to_string(count) + " tensors of type " + type;
  if (!converted.empty())
    std::fprintf(stderr, "halfbyte: %s: %s dequantized and re-quantized to q8_0 at load\n", path.c_str(),
                 converted.c_str());
  if (opts.progress && !opts.progress(1.0f)) throw_error(ErrorKind::Runtime, path, ": load cancelled");
  m->impl_ = std::move(impl);
  release_thread_pool();  // generating on another thread then runs at full speed (halfbyte/threads.hpp)
  return m;
}

const Config& Model::config() const noexcept { return impl_->config; }
const Tokenizer& Model::tokenizer() const noexcept { return impl_->tokenizer; }
int64_t Model::n_ctx() const noexcept { return impl_->net->n_ctx(); }
int64_t Model::position() const noexcept { return impl_->pos; }
void Model::reset() { impl_->pos = 0; }

void Model::collect_activations(quant::Imatrix* m) noexcept { impl_->net->collect_activations(m); }

MemoryReport Model::memory() const {
  const Impl& m = *impl_;
  MemoryReport r;
  r.file = m.file.file_size();
  for (const auto& [p, n] : m.file.mappings()) r.mapped_resident += resident_bytes(p, n).value_or(n);
  m.net->memory(r);
  r.scratch += m.logits.capacity() * sizeof(float);
  r.scratch_resident += m.logits.capacity() * sizeof(float);
  r.tokenizer = m.tokenizer.memory_bytes();
  return r;
}

std::vector<int32_t> Model::tokenize(std::string_view text, bool add_special) const {
  return impl_->tokenizer.encode(text, add_special, /*parse_special=*/false);
}

std::string Model::detokenize(const std::vector<int32_t>& ids) const { return impl_->tokenizer.decode(ids); }

std::vector<float> Model::eval(const std::vector<int32_t>& tokens, bool all_logits) {
  std::vector<float> logits;
  impl_->eval_into(*this, tokens, all_logits, logits);
  return logits;
}

std::string Model::chat_prompt(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  return render_chat(impl_->chat_template, messages, add_generation_prompt);
}

int Model::n_seq() const noexcept { return impl_->n_seq; }

void Model::copy_slot_prefix(int from, int to, int64_t n) {
  const int S = impl_->n_seq;
  if (from < 0 || from >= S || to < 0 || to >= S || from == to)
    throw_invalid("copy_slot_prefix: slots ", from, " -> ", to, " (two different slots in [0, ", S, "))");
  if (n < 0 || n > n_ctx()) throw_invalid("copy_slot_prefix: ", n, " positions (0..", n_ctx(), ")");
  impl_->net->copy_kv(from, to, n);
}

void Model::release_slot(int seq) {
  if (seq < 0 || seq >= impl_->n_seq) throw_invalid("release_slot: slot ", seq, " is outside [0, ", impl_->n_seq, ")");
  impl_->net->discard_kv(seq);
  if (seq == 0) impl_->pos = 0;
}

void Model::eval_batch(const std::vector<BatchToken>& batch, std::vector<float>& logits) {
  Impl& m = *impl_;
  const int64_t V = m.config.n_vocab, n = int64_t(batch.size()), n_ctx = m.net->n_ctx();
  int64_t n_logits = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchToken& b = batch[i];
    if (b.token < 0 || b.token >= V)
      throw_invalid("eval_batch: token id ", b.token, " at index ", i, " is outside the vocabulary [0, ", V, ")");
    if (b.seq < 0 || b.seq >= m.n_seq)
      throw_invalid("eval_batch: slot ", b.seq, " at index ", i, " is outside [0, ", m.n_seq, ")");
    if (b.pos < 0 || b.pos >= n_ctx)
      throw_invalid("eval_batch: position ", b.pos, " at index ", i, " is outside the context [0, ", n_ctx, ")");
    n_logits += b.logits ? 1 : 0;
  }
  logits.resize(size_t(n_logits * V));
  std::vector<int32_t>&tok = m.batch_tok, &seq = m.batch_seq;
  std::vector<int64_t>&pos = m.batch_pos, &rows = m.batch_rows;
  float* out = logits.data();
  for (int64_t i = 0; i < n; i += m.n_batch) {
    const int64_t len = std::min(m.n_batch, n - i);
    tok.clear(), seq.clear(), pos.clear(), rows.clear();
    for (int64_t t = 0; t < len; ++t) {
      const BatchToken& b = batch[size_t(i + t)];
      tok.push_back(b.token), seq.push_back(b.seq), pos.push_back(b.pos);
      if (b.logits) rows.push_back(t);
    }
    m.net->forward(tok.data(), seq.data(), pos.data(), len, rows.data(), int64_t(rows.size()), out);
    out += rows.size() * size_t(V);
  }
}

void Model::Impl::eval_into(Model& self, const std::vector<int32_t>& tokens, bool all_logits,
                            std::vector<float>& out) {
  const int64_t V = config.n_vocab, n = int64_t(tokens.size());
  if (n == 0) throw_invalid("eval: no tokens");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= V)
      throw_invalid("eval: token id ", tokens[i], " at index ", i, " is outside the vocabulary [0, ", V, ")");
  if (pos + n > self.n_ctx())
    throw_invalid("eval: context length ", self.n_ctx(), " exceeded (", pos, " tokens in the cache + ", n, " new)");
  out.resize(size_t(all_logits ? n * V : V));
  for (int64_t i = 0; i < n; i += n_batch) {
    const int64_t len = std::min(n_batch, n - i);
    // Without all_logits only the final chunk's last token matters; earlier chunks
    // write their last row into the same buffer, overwritten later.
    net->forward(tokens.data() + i, len, pos, all_logits, all_logits ? out.data() + i * V : out.data());
    pos += len;
  }
}

namespace {


}  // namespace

std::string Model::generate(const std::string& prompt, const SamplingParams& params, const TokenCallback& on_piece,
                            GenerateStats* stats, bool chat) {
  Impl& m = *impl_;
  if (params.max_tokens < 0) throw_invalid("generate: max_tokens must be >= 0, got ", params.max_tokens);
  Sampler sampler(params);
  std::vector<int32_t> ids = chat ? m.tokenizer.encode(render_chat(m.chat_template, {{"user", prompt}}, true), true, true)
                                  : m.tokenizer.encode(prompt, true, false);
  if (ids.empty()) throw_invalid("generate: the prompt has no tokens");
  using clock = std::chrono::steady_clock;
  GenerateStats st;
  reset();
  auto t0 = clock::now();
  std::vector<float>& logits = m.logits;
  m.eval_into(*this, ids, false, logits);
  st.prompt_tokens = int64_t(ids.size());
  st.prompt_seconds = std::chrono::duration<double>(clock::now() - t0).count();

  TextStream out(params.stop);
  t0 = clock::now();
  for (int i = 0; i < params.max_tokens; ++i) {
    const int32_t tok = sampler.sample(logits.data(), m.config.n_vocab, ids);
    if (m.tokenizer.is_eog(tok)) break;
    ids.push_back(tok);
    ++st.generated_tokens;
    const std::string piece = out.push(m.tokenizer.token_to_piece(tok));
    if (!piece.empty() && on_piece && !on_piece(piece)) break;
    if (out.stopped() || i + 1 == params.max_tokens || m.pos + 1 > n_ctx()) break;
    m.eval_into(*this, {tok}, false, logits);
  }
  const std::string rest = out.finish();
  if (!rest.empty() && on_piece) on_piece(rest);
  st.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  if (stats) *stats = st;
  release_thread_pool();
  return out.text();
}

}  // namespace halfbyte::model
