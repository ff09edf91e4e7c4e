// llama2.c checkpoints: io::open_llama2c on the input, then every tensor
// extent and the model configuration; the same bytes are also offered as a
// tokenizer.bin for the checkpoint (as a user passing the wrong file would).
#include "fuzz_util.hpp"
#include "halfbyte/io/model_file.hpp"
#include "model/llama.hpp"

using namespace halfbyte;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::Scratch::get().write("model.bin", data, size);
  try {
    io::GgufFile f = io::open_llama2c(path);
    HB_FUZZ_CHECK(f.format() == "llama2.c");
    fuzz::note("open");
    fuzz::check_file(f);
    // A checkpoint that opens describes a valid model.
    try {
      const model::Config c = model::config_from_gguf(f);
      HB_FUZZ_CHECK(c.n_embd > 0 && c.n_vocab > 0 && c.n_layer > 0 && c.head_dim % 2 == 0);
    } catch (const Error& e) {
      std::fprintf(stderr, "fuzz: open_llama2c accepted a checkpoint config_from_gguf refuses: %s\n", e.what());
      std::abort();
    }
    io::add_llama2c_tokenizer(f, path);
    fuzz::note("add_llama2c_tokenizer");
    fuzz::try_tokenizer(f);
  } catch (const Error& e) {
    fuzz::note("llama2c", &e);
  }
  return 0;
}
