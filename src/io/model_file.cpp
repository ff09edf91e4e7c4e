// Format sniffing: which loader a path goes to, and which tokenizer joins it.
#include "halfbyte/io/model_file.hpp"

#include <cstdio>
#include <filesystem>

#include "halfbyte/core/error.hpp"

namespace halfbyte::io {
namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const std::string x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

bool has_gguf_magic(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;  // the loader reports the OS error
  char magic[4] = {};
  const size_t got = std::fread(magic, 1, 4, fp);
  std::fclose(fp);
  return got == 4 && magic[0] == 'G' && magic[1] == 'G' && magic[2] == 'U' && magic[3] == 'F';
}

}  // namespace

GgufFile open_model_file(const std::string& path, const std::string& tokenizer) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  GgufFile f = is_dir || ends_with(path, ".safetensors") ? open_safetensors(path)
               : has_gguf_magic(path)                      ? GgufFile::open(path)
                                                           : open_llama2c(path);
  if (!tokenizer.empty()) {
    if (ends_with(tokenizer, ".json"))
      add_hf_tokenizer(f, tokenizer);
    else
      add_llama2c_tokenizer(f, tokenizer);
  } else if (f.format() == "llama2.c") {
    // run.c's convention: tokenizer.bin next to the checkpoint.
    const fs::path beside = fs::path(path).parent_path() / "tokenizer.bin";
    if (!fs::exists(beside, ec))
      throw_error(ErrorKind::InvalidArgument, path,
                  ": a llama2.c checkpoint carries no vocabulary and there is no tokenizer.bin beside it: pass "
                  "its tokenizer.bin (tokenizer=... in Python, --tokenizer on the command line)");
    add_llama2c_tokenizer(f, beside.string());
  } else if (f.format() == "safetensors" && !f.has("tokenizer.ggml.model")) {
    throw_error(ErrorKind::InvalidArgument, path,
                ": this safetensors model has no tokenizer.json beside it: pass one (tokenizer=... in Python, "
                "--tokenizer on the command line)");
  }
  return f;
}

}  // namespace halfbyte::io
