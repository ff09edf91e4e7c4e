// `halfbyte quantize IN OUT --type T`: a model in any format halfbyte reads to a
// quantized GGUF file (library: include/halfbyte/quant/model_quantize.hpp).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "halfbyte/quant/model_quantize.hpp"

namespace halfbyte::cli {
namespace {

// One line on stderr per tensor, rewritten in place while it runs when stderr is a
// terminal ("[ 12/272] blk.1.ffn_up.weight  [#######.............]  35%").
class TensorBar {
 public:
  TensorBar() : tty_(isatty(fileno(stderr)) != 0) {}
  bool operator()(size_t index, size_t count, const std::string& name, float fraction) {
    const int pct = int(fraction * 100.0f);
    if (tty_ || fraction >= 1.0f) {
      if (tty_ && index == last_ && pct == shown_) return true;
      const int filled = std::clamp(int(fraction * 20.0f), 0, 20);
      std::fprintf(stderr, "\r[%4zu/%zu] %-32.32s [%s%s] %3d%%", index + 1, count, name.c_str(),
                   std::string(size_t(filled), '#').c_str(), std::string(size_t(20 - filled), '.').c_str(), pct);
      if (fraction >= 1.0f) std::fputc('\n', stderr);
      std::fflush(stderr);
    }
    last_ = index;
    shown_ = pct;
    return true;
  }

 private:
  bool tty_;
  size_t last_ = size_t(-1);
  int shown_ = -1;
};

std::string shape_text(const std::vector<int64_t>& ne) {
  std::string s;
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? " x " : "") + std::to_string(ne[i]);
  return s;
}

}  // namespace

int cmd_quantize(const Args& args) {
  std::string in, out;
  quant::ModelQuantizeOptions o;
  o.type.clear();
  bool quiet = false;
  ArgReader r(args, "quantize");
  while (!r.done()) {
    const std::string& a = r.next();
    if (a == "--type" || a == "-q") o.type = r.value(a);
    else if (a == "--imatrix") o.imatrix = r.value(a);
    else if (a == "--tokenizer") o.tokenizer = r.value(a);
    else if (a == "-t" || a == "--threads") o.n_threads = int(r.integer(a, 1, 1024));
    else if (a == "--quiet") quiet = true;
    else if (a == "--pure") o.pure = true;
    else if (a == "--no-gptq") o.gptq = false;
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: halfbyte quantize IN OUT --type T [--pure] [--imatrix FILE] [--tokenizer FILE]\n"
          "                         [--no-gptq] [-t THREADS] [--quiet]\n"
          "IN is a GGUF file, a llama2.c checkpoint or an HF safetensors folder; OUT a GGUF file\n"
          "(written under a temporary name, renamed when complete). A BERT folder is written in\n"
          "llama.cpp's bert layout (encoder only: classification heads are refused). T is one of\n"
          "  f32, f16, q8_0, q4_0, q4_1, q5_0, q4_k, q6_k   every weight matrix in that type,\n"
          "            except the output head (output.weight, or token_embd.weight if tied)\n"
          "            at q6_K under the 4/5-bit types, as llama.cpp; --pure: that too\n"
          "  q4_k_s    llama.cpp's Q4_K_S: output head q6_K, attn_v of layers 0-3 and ffn_down\n"
          "            of the first eighth of the layers q5_K, the rest q4_K\n"
          "  q4_k_m    token_embd and output q6_K; attn_v and ffn_down q6_K in the first and\n"
          "            last eighth of the layers and every third layer between; the rest q4_K\n"
          "Norms and biases stay f32. Rows that are not a whole number of blocks fall back\n"
          "q4_K -> q5_0 -> f16, q5_K -> q5_1 -> f16, q6_K -> q8_0 -> f16, 32-blocks -> f16.\n"
          "Already-quantized input tensors are dequantized first (with a warning), unless\n"
          "already in the target type (then copied). --imatrix weights the error by the importance matrix\n"
          "of `halfbyte imatrix`; if that file has covariances (imatrix --covariance), the\n"
          "matrices are quantized with GPTQ (errors compensated across columns; --no-gptq:\n"
          "importance only). Prints a table: tensor, type, bytes, relative RMS error.\n");
      return 0;
    } else if (!a.empty() && a[0] != '-' && in.empty()) in = a;
    else if (!a.empty() && a[0] != '-' && out.empty()) out = a;
    else r.unknown(a);
  }
  if (in.empty() || out.empty()) throw_invalid("IN and OUT are required (see halfbyte quantize --help)");
  if (o.type.empty()) throw_invalid("--type T is required (see halfbyte quantize --help)");
  TensorBar bar;
  if (!quiet) o.progress = [&bar](size_t i, size_t n, const std::string& name, float fr) { return bar(i, n, name, fr); };
  o.warn = [](const std::string& m) { std::fprintf(stderr, "warning: %s\n", m.c_str()); };
  const auto table = quant::quantize_model(in, out, o);

  std::printf("%-36s %-6s %-6s %-16s %12s %10s\n", "tensor", "from", "type", "shape", "bytes", "rel.rms");
  uint64_t total = 0, numel = 0;
  for (const auto& t : table) {
    std::printf("%-36s %-6s %-6s %-16s %12llu %10.5f\n", t.name.c_str(), t.source_type.c_str(), t.type.c_str(),
                shape_text(t.shape).c_str(), (unsigned long long)t.bytes, t.rel_rms_error);
    total += t.bytes;
    int64_t ne = 1;
    for (int64_t d : t.shape) ne *= d;
    numel += uint64_t(ne);
  }
  std::printf("%zu tensors, %llu bytes of tensor data, %.3f bits/weight -> %s\n", table.size(),
              (unsigned long long)total, numel ? 8.0 * double(total) / double(numel) : 0.0, out.c_str());
  return 0;
}

}  // namespace halfbyte::cli
