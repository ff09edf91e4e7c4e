// Hugging Face tokenizer.json: the input is <scratch>/hf/tokenizer.json, beside a
// fixed tiny model.safetensors the harness writes once. Two readers take it:
//   - io::add_hf_tokenizer (the BPE families of the decoder models) on the
//     safetensors model's GgufFile, then the metadata checks and
//     Tokenizer::from_gguf with encode/decode of fixed strings;
//   - model::WordPieceTokenizer::from_folder (the BERT encoders' tokenizer), then
//     encode / encode_pair / tokenize of fixed strings.
#include <cstdlib>

#include "fuzz_util.hpp"
#include "halfbyte/io/model_file.hpp"
#include "safetensors_write.hpp"

using namespace halfbyte;

namespace {

// The model beside tokenizer.json: one F32 tensor named token_embd.weight, whose
// 320 rows stand for the model's vocabulary size (add_hf_tokenizer pads the
// vocabulary up to it with [PAD<id>] tokens).
std::string make_folder() {
  fuzz::Scratch& s = fuzz::Scratch::get();
  const std::string dir = s.subdir("hf");
  const std::vector<uint8_t> model =
      fuzz::st::file({{"token_embd.weight", "F32", {320, 2}, fuzz::st::f32(fuzz::st::pattern(640, 1))}});
  s.write("hf/model.safetensors", model.data(), model.size());
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = make_folder();
  const std::string path = fuzz::Scratch::get().write("hf/tokenizer.json", data, size);
  io::GgufFile f = [&] {
    try {
      return io::open_safetensors_tensors(dir);
    } catch (const Error& e) {
      std::fprintf(stderr, "fuzz: the harness's model.safetensors does not open: %s\n", e.what());
      std::abort();
    }
  }();
  try {
    io::add_hf_tokenizer(f, path);
    fuzz::note("add_hf_tokenizer");
    fuzz::check_file(f);
    fuzz::try_tokenizer(f);
  } catch (const Error& e) {
    fuzz::note("add_hf_tokenizer", &e);
  }
  try {
    const model::WordPieceTokenizer tok = model::WordPieceTokenizer::from_folder(dir);
    fuzz::note("wordpiece");
    fuzz::exercise_wordpiece(tok);
  } catch (const Error& e) {
    fuzz::note("wordpiece", &e);
  }
  return 0;
}
