// Encoder config.json: the input is the config.json of an encoder folder whose
// other files the harness writes once: a tiny model.safetensors and vocab.txt.
// model::Encoder::load (f32 weights, one thread) reads the config (BERT's or
// DistilBERT's keys, the classification head's architectures / id2label /
// num_labels / problem_type) and checks it against the tensors; a model that
// loads embeds fixed texts (and classifies them if it has a head): the outputs
// must have the configured size and be finite.
//
// The fixture: vocabulary 16, hidden 32, 1 layer, intermediate 64, 16 positions,
// 2 token types, all F32 under the names transformers writes: BertModel's
// (embeddings.*, encoder.layer.0.*, pooler.dense), DistilBertModel's
// (transformer.layer.0.*; the embeddings are shared), and a 2-label head
// (classifier, DistilBERT's pre_classifier), so that BERT and DistilBERT
// configs, with or without a *ForSequenceClassification head, all load.
#include <cmath>
#include <cstdlib>

#include "fuzz_util.hpp"
#include "halfbyte/model/encoder.hpp"
#include "safetensors_write.hpp"

using namespace halfbyte;

namespace {

constexpr uint64_t kVocab = 16, kDim = 32, kFF = 64, kPositions = 16, kTypes = 2, kLabels = 2;

const char* const kTokens[kVocab] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog",
                                     "sat",   "on",    "a",     "mat",   "hello",  "world", "##s", "."};

std::string make_folder() {
  namespace st = fuzz::st;
  std::vector<st::Tensor> ts;
  uint32_t seed = 0;
  auto matrix = [&](const std::string& name, uint64_t rows, uint64_t cols, float scale) {
    ts.push_back({name, "F32", {rows, cols}, st::f32(st::pattern(rows * cols, ++seed, scale))});
  };
  auto vec = [&](const std::string& name, uint64_t n, float offset, float scale) {
    std::vector<float> v = st::pattern(n, ++seed, scale);
    for (float& x : v) x += offset;
    ts.push_back({name, "F32", {n}, st::f32(v)});
  };
  auto linear = [&](const std::string& name, uint64_t out, uint64_t in) {
    matrix(name + ".weight", out, in, 0.2f);
    vec(name + ".bias", out, 0.0f, 0.05f);
  };
  auto layer_norm = [&](const std::string& name) {
    vec(name + ".weight", kDim, 1.0f, 0.1f);
    vec(name + ".bias", kDim, 0.0f, 0.05f);
  };
  matrix("embeddings.word_embeddings.weight", kVocab, kDim, 0.5f);
  matrix("embeddings.position_embeddings.weight", kPositions, kDim, 0.1f);
  matrix("embeddings.token_type_embeddings.weight", kTypes, kDim, 0.1f);
  layer_norm("embeddings.LayerNorm");
  const std::string b = "encoder.layer.0.";
  for (const char* p : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"})
    linear(b + p, kDim, kDim);
  layer_norm(b + "attention.output.LayerNorm");
  linear(b + "intermediate.dense", kFF, kDim);
  linear(b + "output.dense", kDim, kFF);
  layer_norm(b + "output.LayerNorm");
  linear("pooler.dense", kDim, kDim);
  const std::string d = "transformer.layer.0.";
  for (const char* p : {"attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin"})
    linear(d + p, kDim, kDim);
  layer_norm(d + "sa_layer_norm");
  linear(d + "ffn.lin1", kFF, kDim);
  linear(d + "ffn.lin2", kDim, kFF);
  layer_norm(d + "output_layer_norm");
  linear("pre_classifier", kDim, kDim);
  linear("classifier", kLabels, kDim);

  fuzz::Scratch& s = fuzz::Scratch::get();
  const std::string dir = s.subdir("encoder");
  const std::vector<uint8_t> model = st::file(ts);
  s.write("encoder/model.safetensors", model.data(), model.size());
  std::string vocab;
  for (const char* t : kTokens) vocab += std::string(t) + "\n";
  s.write("encoder/vocab.txt", reinterpret_cast<const uint8_t*>(vocab.data()), vocab.size());
  return dir;
}

void check_finite(const std::vector<float>& v, size_t n) {
  HB_FUZZ_CHECK(v.size() == n);
  for (float x : v) HB_FUZZ_CHECK(std::isfinite(x));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = make_folder();
  fuzz::Scratch::get().write("encoder/config.json", data, size);
  model::EncoderOptions opts;
  opts.dtype = "f32";
  opts.n_threads = 1;
  try {
    const std::unique_ptr<model::Encoder> enc = model::Encoder::load(dir, opts);
    fuzz::note("load");
    const model::EncoderConfig& c = enc->config();
    HB_FUZZ_CHECK(c.arch == "bert" || c.arch == "distilbert");
    HB_FUZZ_CHECK(enc->dim() == int64_t(kDim) && c.n_vocab == int64_t(kVocab) && c.n_layer == 1);
    HB_FUZZ_CHECK(c.n_head >= 1 && kDim % uint64_t(c.n_head) == 0);
    HB_FUZZ_CHECK(c.max_length >= 2 && c.max_length <= c.n_positions);
    HB_FUZZ_CHECK(enc->n_labels() == 0 || enc->n_labels() == int64_t(kLabels));
    // The last text is longer than the 16 positions: truncated to max_length.
    const std::vector<std::string> texts = {"hello world", "the cats sat on a mat.",
                                            "the dog sat on the cat on the mat on a dog on the cat hello world."};
    check_finite(enc->embed(texts), texts.size() * kDim);
    if (enc->n_labels() > 0) {
      check_finite(enc->classify(texts), texts.size() * kLabels);
      fuzz::note("classify");
    }
  } catch (const Error& e) {
    fuzz::note("load", &e);
  }
  return 0;
}
