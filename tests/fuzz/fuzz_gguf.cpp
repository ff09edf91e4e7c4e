// GGUF: GgufFile::open on the input, then every metadata value and tensor
// extent, the model configuration (config_from_gguf) and the tokenizer
// (Tokenizer::from_gguf, then encode/decode of fixed strings).
#include "fuzz_util.hpp"
#include "model/llama.hpp"

using namespace halfbyte;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::Scratch::get().write("input.gguf", data, size);
  try {
    const io::GgufFile f = io::GgufFile::open(path);
    fuzz::note("open");
    fuzz::check_file(f);
    try {
      const model::Config c = model::config_from_gguf(f);
      HB_FUZZ_CHECK(c.n_embd > 0 && c.n_head > 0 && c.n_head_kv > 0 && c.n_vocab > 0);
      fuzz::note("config");
    } catch (const Error& e) {
      fuzz::note("config", &e);
    }
    fuzz::try_tokenizer(f);
  } catch (const Error& e) {
    fuzz::note("open", &e);
  }
  return 0;
}
