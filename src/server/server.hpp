// `halfbyte serve`: an OpenAI-compatible HTTP server over a Llama-family model
// (continuous batching, model::Batcher) and optionally a BERT-family encoder
// (embeddings, classification). docs/server.md describes the API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace halfbyte::server {

struct ServerOptions {
  std::string model;        // GGUF (or any file Model::load reads); required
  std::string embed_model;  // encoder folder or GGUF; optional
  std::string alias, embed_alias;  // model ids; default: file names without .gguf
  std::string embed_dtype = "q8_0";
  std::string host = "127.0.0.1";
  int port = 8080;          // 0: any free port (printed)
  int parallel = 8;         // sequences decoded together (KV-cache slots)
  int64_t n_ctx = 2048;     // tokens per sequence
  int n_threads = 0;        // 0: halfbyte::num_threads()
  std::string api_key;      // non-empty: every route but /health needs "Authorization: Bearer KEY"
  size_t max_body = 1 << 20;      // bytes
  int64_t max_tokens = 2048;      // cap on a request's max_tokens
  int64_t max_queue = 64;         // generation requests waiting for a slot, beyond which 503
  int http_threads = 0;           // 0: 2 * parallel + 8
};

// Loads the models, listens, and serves until SIGTERM or SIGINT: then refuses new
// work, lets running requests finish, and returns 0. Throws halfbyte::Error if a
// model cannot be loaded or the address cannot be bound.
int serve(const ServerOptions& opts);

}  // namespace halfbyte::server
