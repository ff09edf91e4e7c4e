// llama2.c tokenizer.bin: the first 4 bytes of the input choose the vocabulary
// size of a valid tiny checkpoint the harness writes (a sparse file, so a huge
// vocabulary costs nothing); the rest is the tokenizer.bin given to
// io::add_llama2c_tokenizer. A vocabulary that loads is then run through
// Tokenizer::from_gguf and encode/decode.
#include <cstring>

#include "fuzz_util.hpp"
#include "halfbyte/io/model_file.hpp"

using namespace halfbyte;

namespace {

// Legacy (v0) llama2.c checkpoint: dim 2, hidden 2, 1 layer, 1 head, seq_len 1,
// shared classifier, `vocab` tokens; the weights are a hole of zeros.
std::string write_checkpoint(int32_t vocab) {
  const int32_t header[7] = {2, 2, 1, 1, 1, vocab, 1};
  // token_embd [V, 2], then 2 + 4*4 + 2 + 3*4 + 2 floats of layer and final weights, RoPE table.
  const uint64_t size = sizeof header + 4 * (uint64_t(vocab) * 2 + 64);
  return fuzz::Scratch::get().write("model.bin", reinterpret_cast<const uint8_t*>(header), sizeof header, size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t sel;
  std::memcpy(&sel, data, 4);
  const int32_t vocab = int32_t(sel % (1u << 24)) + 1;  // llama2.c's range: 1 .. 2^24
  const std::string model = write_checkpoint(vocab);
  const std::string tok = fuzz::Scratch::get().write("tokenizer.bin", data + 4, size - 4);
  io::GgufFile f = [&] {
    try {
      return io::open_llama2c(model);
    } catch (const Error& e) {
      std::fprintf(stderr, "fuzz: the harness's checkpoint does not open: %s\n", e.what());
      std::abort();
    }
  }();
  try {
    io::add_llama2c_tokenizer(f, tok);
    const io::GgufArray& tokens = f.get("tokenizer.ggml.tokens").as_array("tokenizer.ggml.tokens");
    HB_FUZZ_CHECK(tokens.items.size() == size_t(vocab));
    fuzz::note("add_llama2c_tokenizer");
    fuzz::check_file(f);
    fuzz::try_tokenizer(f);
  } catch (const Error& e) {
    fuzz::note("add_llama2c_tokenizer", &e);
  }
  return 0;
}
