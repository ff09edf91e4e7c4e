// `halfbyte serve`: the OpenAI-compatible server (src/server, docs/server.md).
#include <cstdio>
#include <string>

#include "cli/args.hpp"
#include "cli/commands.hpp"

#ifdef HALFBYTE_HAVE_SERVER
#include "server/server.hpp"
#endif

namespace halfbyte::cli {

int cmd_serve(const Args& args) {
#ifndef HALFBYTE_HAVE_SERVER
  (void)args;
  throw_error(ErrorKind::Unsupported,
              "this halfbyte was built without the server (install libcpp-httplib-dev and nlohmann-json3-dev, "
              "then rebuild)");
#else
  server::ServerOptions o;
  ArgReader r(args, "serve");
  while (!r.done()) {
    const std::string& a = r.next();
    if (a == "-m" || a == "--model") o.model = r.value(a);
    else if (a == "--embed-model") o.embed_model = r.value(a);
    else if (a == "--embed-dtype") o.embed_dtype = r.value(a);
    else if (a == "--alias") o.alias = r.value(a);
    else if (a == "--embed-alias") o.embed_alias = r.value(a);
    else if (a == "--host") o.host = r.value(a);
    else if (a == "--port") o.port = int(r.integer(a, 0, 65535));
    else if (a == "-np" || a == "--parallel") o.parallel = int(r.integer(a, 1, 256));
    else if (a == "-c" || a == "--ctx") o.n_ctx = r.integer(a, 16, 1 << 20);
    else if (a == "-t" || a == "--threads") o.n_threads = int(r.integer(a, 1, 1024));
    else if (a == "--api-key") o.api_key = r.value(a);
    else if (a == "--max-body") o.max_body = size_t(r.integer(a, 1024, 1L << 32));
    else if (a == "--max-tokens") o.max_tokens = r.integer(a, 1, 1 << 20);
    else if (a == "--max-queue") o.max_queue = r.integer(a, 0, 1 << 20);
    else if (a == "--http-threads") o.http_threads = int(r.integer(a, 1, 1024));
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: halfbyte serve -m MODEL [options]\n"
          "An OpenAI-compatible HTTP server (docs/server.md). Stops cleanly on SIGTERM/Ctrl-C.\n"
          "  -m, --model PATH       Llama-family model (GGUF, safetensors folder, llama2.c)\n"
          "  --embed-model PATH     BERT-family encoder for /v1/embeddings and /v1/classify\n"
          "  --embed-dtype T        its weights: q8_0 (default), q4_0, f16, f32\n"
          "  --alias ID             model id clients send (default: the file name without .gguf)\n"
          "  --embed-alias ID       the encoder's id\n"
          "  --host ADDR            default 127.0.0.1 (loopback only); 0.0.0.0 exposes it to the network\n"
          "  --port N               default 8080; 0 picks a free port (printed on stderr)\n"
          "  -np, --parallel N      sequences decoded together, each with its own KV cache (default 8)\n"
          "  -c, --ctx N            tokens per sequence, prompt + completion (default 2048)\n"
          "  -t, --threads N        compute threads (default: all cores)\n"
          "  --api-key KEY          require 'Authorization: Bearer KEY' (all routes but /health)\n"
          "  --max-body BYTES       request body limit (default 1 MiB; larger: 413)\n"
          "  --max-tokens N         cap on max_tokens per request (default 2048)\n"
          "  --max-queue N          requests waiting for a sequence before 503 (default 64)\n"
          "  --http-threads N       connections served at once (default 2 * parallel + 8)\n");
      return 0;
    } else {
      r.unknown(a);
    }
  }
  if (o.model.empty()) throw_invalid("serve: a model is required (-m MODEL)");
  if (o.host != "127.0.0.1" && o.host != "localhost" && o.host != "::1")
    std::fprintf(stderr,
                 "halfbyte serve: warning: listening on %s, not loopback: other machines can reach this server%s\n",
                 o.host.c_str(), o.api_key.empty() ? " and it has no --api-key" : "");
  return server::serve(o);
#endif
}

}  // namespace halfbyte::cli
