// `halfbyte perplexity -m MODEL -f TEXT [--ctx 512] [--kl-base BASE]`: llama.cpp's
// perplexity method (include/halfbyte/model/perplexity.hpp), with the KL divergence
// and top-1 agreement of MODEL's next-token distribution against BASE's.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "halfbyte/core/error.hpp"
#include "halfbyte/model/model.hpp"
#include "halfbyte/model/perplexity.hpp"

namespace halfbyte::cli {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_error(ErrorKind::Io, path, ": cannot open the text file (No such file or directory?)");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void print_stats(std::FILE* out, const model::PerplexityStats& s, bool final_line) {
  std::fprintf(out, "%s[%lld/%lld] PPL %.4f +/- %.5f", final_line ? "" : "\r", (long long)s.chunks,
               (long long)s.chunks_total, s.ppl, s.ppl_err);
  if (s.has_base)
    std::fprintf(out, " | KL %.6f +/- %.6f | top-1 %.2f +/- %.2f %% | base PPL %.4f", s.kl, s.kl_err, 100.0 * s.top1,
                 100.0 * s.top1_err, s.base_ppl);
  std::fflush(out);
}

}  // namespace

int cmd_perplexity(const Args& args) {
  std::string path, text_path, base_path;
  model::LoadOptions lo;
  model::PerplexityOptions po;
  ArgReader r(args, "perplexity");
  while (!r.done()) {
    const std::string& a = r.next();
    if (a == "-m" || a == "--model") path = r.value(a);
    else if (a == "-f" || a == "--file") text_path = r.value(a);
    else if (a == "--kl-base") base_path = r.value(a);
    else if (a == "-c" || a == "--ctx") po.n_ctx = r.integer(a, 4, 1 << 20);
    else if (a == "--chunks") po.max_chunks = r.integer(a, 1, 1L << 30);
    else if (a == "-t" || a == "--threads") lo.n_threads = int(r.integer(a, 1, 1024));
    else if (a == "--tokenizer") lo.tokenizer = r.value(a);
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: halfbyte perplexity -m MODEL -f TEXT [--ctx N] [--chunks N] [--kl-base BASE] [-t THREADS]\n"
          "Perplexity of MODEL on the text file TEXT, by llama.cpp's method: the tokenized text\n"
          "is cut into chunks of N tokens (default 512; BOS first if the model adds one) and\n"
          "the second half of each chunk is scored. Prints the running estimate +/- its error.\n"
          "--kl-base BASE also evaluates BASE (e.g. the f16 source of a quantized MODEL) on\n"
          "the same chunks: mean KL(BASE || MODEL) of the next-token distributions and how\n"
          "often their most likely tokens agree. --chunks limits the number of chunks.\n");
      return 0;
    } else {
      r.unknown(a);
    }
  }
  if (path.empty()) throw_invalid("-m MODEL is required (see halfbyte perplexity --help)");
  if (text_path.empty()) throw_invalid("-f TEXT is required (see halfbyte perplexity --help)");
  const std::string text = read_text(text_path);
  lo.n_ctx = po.n_ctx;
  auto m = model::Model::load(path, lo);
  std::unique_ptr<model::Model> base;
  if (!base_path.empty()) base = model::Model::load(base_path, lo);
  po.progress = [](const model::PerplexityStats& s) {
    print_stats(stderr, s, false);
    return true;
  };
  const model::PerplexityStats s = model::perplexity(*m, text, po, base.get());
  std::fprintf(stderr, "\n");
  std::printf("model %s, text %s, ctx %lld, %lld chunks, %lld positions scored\n", path.c_str(), text_path.c_str(),
              (long long)po.n_ctx, (long long)s.chunks, (long long)s.scored);
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", s.ppl, s.ppl_err);
  if (s.has_base) {
    std::printf("base %s: PPL = %.4f\n", base_path.c_str(), s.base_ppl);
    std::printf("Mean KL(base || model) = %.6f +/- %.6f\n", s.kl, s.kl_err);
    std::printf("Same top-1: %.3f +/- %.3f %%\n", 100.0 * s.top1, 100.0 * s.top1_err);
  }
  return 0;
}

}  // namespace halfbyte::cli
