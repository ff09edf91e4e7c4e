// HF safetensors + config.json (in progress).
#include "halfbyte/core/error.hpp"
#include "halfbyte/io/model_file.hpp"

namespace halfbyte::io {

GgufFile open_safetensors(const std::string& path) {
  throw_error(ErrorKind::Unsupported, path, ": safetensors models are not supported yet");
}

void add_hf_tokenizer(GgufFile&, const std::string& tokenizer_json) {
  throw_error(ErrorKind::Unsupported, tokenizer_json, ": tokenizer.json is not supported yet");
}

}  // namespace halfbyte::io
