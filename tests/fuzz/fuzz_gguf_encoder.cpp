// BERT encoder GGUF (llama.cpp's "bert" layout): the input is a .gguf file that
// model::Encoder::load (f32 weights, one thread) opens through read_gguf_encoder
// (encoder_gguf.cpp): general.architecture, the bert.* sizes, epsilon, causal and
// pooling keys, the tokenizer.ggml.* WordPiece vocabulary in phantom-space form
// with its token types and special ids, then the tensors under llama.cpp's names
// (token_embd, position_embd, token_types, token_embd_norm, blk.N.*) checked
// against those sizes (F32, F16, BF16 or a ggml quantized type). A model that
// loads embeds fixed texts (and classifies them if it has a head): outputs of the
// model's size, and finite when the file's weights are tame.
//
// The weights are the input's own bytes, so a NaN or a huge value in them makes
// non-finite outputs legitimately: the outputs must be finite only when every
// weight (of every tensor, converted to float) is finite and at most kTame in
// magnitude, which at the sizes a file this small can hold keeps every
// intermediate far inside float's range.
#include <cmath>

#include "fuzz_util.hpp"
#include "halfbyte/model/encoder.hpp"
#include "model/linear.hpp"

using namespace halfbyte;

namespace {

constexpr float kTame = 1000.0f;

// Every value of every tensor finite and within [-kTame, kTame] (a tensor of a
// type that does not convert, which the model does not use: not tame).
bool tame_weights(const std::string& path) try {
  const io::GgufFile f = io::GgufFile::open(path);
  std::vector<float> row;
  for (const io::GgufTensorInfo& t : f.tensors()) {
    const int64_t rows = t.numel() / t.ne[0];
    row.assign(size_t(t.ne[0]), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      model::tensor_row_to_float(f, t, r, row.data());
      for (float x : row)
        if (!(std::fabs(x) <= kTame)) return false;
    }
  }
  return true;
} catch (const Error&) {
  return false;
}

void check_output(const std::vector<float>& v, size_t n, bool tame) {
  HB_FUZZ_CHECK(v.size() == n);
  if (tame)
    for (float x : v) HB_FUZZ_CHECK(std::isfinite(x));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::Scratch::get().write("input.gguf", data, size);
  model::EncoderOptions opts;
  opts.dtype = "f32";
  opts.n_threads = 1;
  try {
    const std::unique_ptr<model::Encoder> enc = model::Encoder::load(path, opts);
    fuzz::note("load");
    const model::EncoderConfig& c = enc->config();
    HB_FUZZ_CHECK(c.arch == "bert");
    HB_FUZZ_CHECK(enc->dim() == c.n_embd && c.n_embd > 0 && c.n_layer >= 1 && c.n_ff >= 1);
    HB_FUZZ_CHECK(c.n_head >= 1 && c.n_embd % c.n_head == 0);
    HB_FUZZ_CHECK(c.n_vocab == enc->tokenizer().n_vocab() && c.n_vocab > 0);
    HB_FUZZ_CHECK(c.max_length >= 2 && c.max_length <= c.n_positions);
    HB_FUZZ_CHECK(enc->n_labels() >= 0);
    const bool tame = tame_weights(path);
    fuzz::note(tame ? "weights tame" : "weights not tame (outputs may be non-finite)");
    const std::vector<std::string> texts = {"hello world", "the cats sat on a mat."};
    check_output(enc->embed(texts), texts.size() * size_t(c.n_embd), tame);
    fuzz::note("embed");
    if (enc->n_labels() > 0) {
      check_output(enc->classify(texts), texts.size() * size_t(enc->n_labels()), tame);
      fuzz::note("classify");
    }
  } catch (const Error& e) {
    fuzz::note("load", &e);
  }
  return 0;
}
