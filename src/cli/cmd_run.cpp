// `halfbyte run`: generate text with a model, streaming it to stdout.
#include <cstdio>
#include <string>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "halfbyte/halfbyte.hpp"
#include "halfbyte/model/model.hpp"

namespace halfbyte::cli {

int cmd_run(const Args& args) {
  std::string path, prompt;
  model::SamplingParams sp;
  model::LoadOptions lo;
  bool chat = false;
  ArgReader r(args, "run");
  while (!r.done()) {
    const std::string& a = r.next();
    if (a == "-m" || a == "--model") path = r.value(a);
    else if (a == "--tokenizer") lo.tokenizer = r.value(a);
    else if (a == "--quantize") lo.quantize = r.value(a);
    else if (a == "--kv-cache") {
      const std::string t = r.value(a);
      if (t != "f16" && t != "f32") throw_invalid("--kv-cache must be f16 or f32, got '", t, "'");
      lo.kv_f16 = t == "f16";
    }
    else if (a == "-p" || a == "--prompt") prompt = r.value(a);
    else if (a == "-n" || a == "--n-predict") sp.max_tokens = int(r.integer(a, 0, 1 << 20));
    else if (a == "--temp") sp.temperature = float(r.number(a, 0.0, 100.0));
    else if (a == "--top-k") sp.top_k = int(r.integer(a, 0, 1 << 30));
    else if (a == "--top-p") sp.top_p = float(r.number(a, 1e-6, 1.0));
    else if (a == "--min-p") sp.min_p = float(r.number(a, 0.0, 0.999));
    else if (a == "--repeat-penalty") sp.repeat_penalty = float(r.number(a, 0.01, 100.0));
    else if (a == "--seed") {
      sp.seed = uint64_t(r.integer(a, 0, 0x7fffffffffffffffL));
      sp.has_seed = true;
    } else if (a == "-t" || a == "--threads") lo.n_threads = int(r.integer(a, 1, 1024));
    else if (a == "-c" || a == "--ctx") lo.n_ctx = r.integer(a, 1, 1 << 20);
    else if (a == "--chat") chat = true;
    else if (a == "--stop") sp.stop.push_back(r.value(a));
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: halfbyte run -m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
          "                    [--min-p P] [--repeat-penalty R] [--seed S] [-t THREADS] [-c CTX]\n"
          "                    [--stop STR]... [--chat] [--tokenizer FILE] [--quantize FORMAT]\n"
          "                    [--kv-cache f16|f32]\n"
          "MODEL is a GGUF file, a llama2.c checkpoint (tokenizer.bin beside it or given by\n"
          "--tokenizer) or an HF safetensors folder. --quantize sets the format of weights\n"
          "stored as float (q4_0, q4_1, q8_0, int4_g64, ... or f32; default q8_0 for\n"
          "llama2.c and safetensors, float for GGUF).\n"
          "Generates up to N tokens (default 128) after PROMPT, printing them as they come,\n"
          "then a line with prompt and decode speed. Greedy unless --temp > 0. --chat wraps\n"
          "the prompt in the model's chat template.\n");
      return 0;
    } else {
      r.unknown(a);
    }
  }
  if (path.empty()) throw_invalid("-m MODEL is required (see halfbyte run --help)");
  if (prompt.empty()) throw_invalid("-p PROMPT is required (see halfbyte run --help)");
  auto m = model::Model::load(path, lo);
  model::GenerateStats st;
  if (!chat) {
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  m->generate(prompt, sp,
              [](std::string_view piece) {
                std::fwrite(piece.data(), 1, piece.size(), stdout);
                std::fflush(stdout);
                return true;
              },
              &st, chat);
  std::printf("\n");
  std::fflush(stdout);  // (the text's end before the stats on stderr, also through a pipe)
  std::fprintf(stderr, "prompt: %lld tokens, %.1f tokens/s | decode: %lld tokens, %.1f tokens/s | isa %s, %d threads\n",
               (long long)st.prompt_tokens, st.prompt_tps(), (long long)st.generated_tokens, st.decode_tps(),
               isa().c_str(), lo.n_threads > 0 ? lo.n_threads : num_threads());
  return 0;
}

}  // namespace halfbyte::cli
