// `halfbyte imatrix -m MODEL -f TEXT -o FILE [--ctx 512] [--chunks N]`: per input
// column of every weight matrix, the mean squared activation on calibration text
// (include/halfbyte/model/imatrix.hpp), written in llama.cpp's imatrix GGUF layout
// for `halfbyte quantize --imatrix FILE` (or llama.cpp's quantizer).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "halfbyte/core/error.hpp"
#include "halfbyte/model/imatrix.hpp"
#include "halfbyte/model/model.hpp"

namespace halfbyte::cli {

int cmd_imatrix(const Args& args) {
  std::string path, text_path, out_path;
  model::LoadOptions lo;
  model::ImatrixOptions io;
  ArgReader r(args, "imatrix");
  while (!r.done()) {
    const std::string& a = r.next();
    if (a == "-m" || a == "--model") path = r.value(a);
    else if (a == "-f" || a == "--file") text_path = r.value(a);
    else if (a == "-o" || a == "--output") out_path = r.value(a);
    else if (a == "-c" || a == "--ctx") io.n_ctx = r.integer(a, 2, 1 << 20);
    else if (a == "--chunks") io.max_chunks = r.integer(a, 1, 1L << 30);
    else if (a == "-t" || a == "--threads") lo.n_threads = int(r.integer(a, 1, 1024));
    else if (a == "--tokenizer") lo.tokenizer = r.value(a);
    else if (a == "--quantize") lo.quantize = r.value(a);
    else if (a == "--covariance") io.covariance = true;
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: halfbyte imatrix -m MODEL -f TEXT -o FILE [--ctx N] [--chunks N] [-t THREADS]\n"
          "                        [--covariance] [--quantize f32|q8_0|...] [--tokenizer FILE]\n"
          "Runs MODEL over the calibration text TEXT in chunks of N tokens (default 512) and\n"
          "writes, per weight matrix, the sum of squared input activations per column and the\n"
          "token count (llama.cpp's imatrix GGUF layout) to FILE, for\n"
          "`halfbyte quantize IN OUT --type T --imatrix FILE`. Use the best-precision model\n"
          "you have (f16/f32 or q8_0) and text disjoint from any evaluation text; --quantize\n"
          "f32 keeps a float model (llama2.c, safetensors) in fp32 (default: q8_0 at load).\n"
          "--covariance also stores each matrix input's second moment (sum of x x^T, n_in^2\n"
          "floats: a file of hundreds of MB) so that quantize uses GPTQ, which lowers the\n"
          "output error further; llama.cpp reads such a file too (it ignores the extra).\n");
      return 0;
    } else {
      r.unknown(a);
    }
  }
  if (path.empty()) throw_invalid("-m MODEL is required (see halfbyte imatrix --help)");
  if (text_path.empty()) throw_invalid("-f TEXT is required (see halfbyte imatrix --help)");
  if (out_path.empty()) throw_invalid("-o FILE is required (see halfbyte imatrix --help)");
  std::ifstream in(text_path, std::ios::binary);
  if (!in) throw_error(ErrorKind::Io, text_path, ": cannot open the text file (No such file or directory?)");
  std::ostringstream text;
  text << in.rdbuf();
  lo.n_ctx = io.n_ctx;
  auto m = model::Model::load(path, lo);
  const auto slash = text_path.find_last_of('/');
  io.dataset = slash == std::string::npos ? text_path : text_path.substr(slash + 1);
  io.progress = [](int64_t done, int64_t total) {
    std::fprintf(stderr, "\rimatrix: chunk %lld/%lld", (long long)done, (long long)total);
    std::fflush(stderr);
    return true;
  };
  const quant::Imatrix im = model::collect_imatrix(*m, text.str(), io);
  std::fprintf(stderr, "\n");
  quant::save_imatrix(out_path, im);
  std::printf("wrote %s: %zu weight matrices%s, %lld chunks of %lld tokens\n", out_path.c_str(), im.entries.size(),
              im.covariance ? " with covariances" : "", (long long)im.chunk_count, (long long)im.chunk_size);
  return 0;
}

}  // namespace halfbyte::cli
