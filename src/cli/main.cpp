// `halfbyte`: the command-line tool.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/commands.hpp"
#include "halfbyte/halfbyte.hpp"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: halfbyte <command> [options]\n"
               "\n"
               "commands:\n"
               "  run       generate text with a GGUF model (halfbyte run -m MODEL -p PROMPT)\n"
               "  info      list a GGUF file's metadata and tensors\n"
               "  quantize  write a model as a quantized GGUF file (halfbyte quantize IN OUT --type T)\n"
               "  perplexity  perplexity on a text file, KL vs a base model (-m MODEL -f TEXT)\n"
               "  imatrix   activation statistics for importance-weighted quantization\n"
               "            (-m MODEL -f TEXT -o FILE)\n"
               "  embed     sentence embeddings of a file's lines with a BERT-family encoder,\n"
               "            as a float32 .npy file (-m MODEL -f TEXTS -o OUT.npy); on a Ray\n"
               "            cluster: embed --ray [ADDRESS] -m MODEL -i INPUT -o OUTDIR\n"
               "  classify  labels and scores of texts with a text-classification encoder\n"
               "            (-m MODEL \"text\" ... or -f FILE)\n"
               "  serve     an OpenAI-compatible HTTP server with continuous batching\n"
               "            (-m MODEL [--embed-model M] [--port 8080] [--parallel 8])\n"
               "  formats   quantize a random Gaussian matrix in every format and print the\n"
               "            error of round-to-nearest vs the error-minimising search\n"
               "  version   print the version and the kernel ISA in use\n"
               "\n"
               "`halfbyte <command> --help` describes a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  const halfbyte::cli::Args args(argv + 2, argv + argc);
  try {
    if (cmd == "formats") return halfbyte::cli::cmd_formats(args);
    if (cmd == "run") return halfbyte::cli::cmd_run(args);
    if (cmd == "info") return halfbyte::cli::cmd_info(args);
    if (cmd == "quantize") return halfbyte::cli::cmd_quantize(args);
    if (cmd == "perplexity") return halfbyte::cli::cmd_perplexity(args);
    if (cmd == "imatrix") return halfbyte::cli::cmd_imatrix(args);
    if (cmd == "embed") return halfbyte::cli::cmd_embed(args);
    if (cmd == "classify") return halfbyte::cli::cmd_classify(args);
    if (cmd == "serve") return halfbyte::cli::cmd_serve(args);
    if (cmd == "version" || cmd == "--version") {
      std::printf("halfbyte %s (isa: %s)\n", halfbyte::library_version(), halfbyte::isa().c_str());
      return 0;
    }
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      usage(stdout);
      return 0;
    }
    std::fprintf(stderr, "halfbyte: unknown command '%s'\n\n", cmd.c_str());
    usage(stderr);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "halfbyte %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
