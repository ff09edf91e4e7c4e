// The OpenAI-compatible request and response bodies of `halfbyte serve`: parsing
// and validating requests (every field's type and range checked, an ApiError
// naming the field otherwise) and building responses. No I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "halfbyte/model/batcher.hpp"
#include "halfbyte/model/model.hpp"

namespace halfbyte::server {

using json = nlohmann::json;

// An error answered with `status` and OpenAI's error body.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string type = {}, std::string code = {})
      : std::runtime_error(message), status(status), param(std::move(param)), code(std::move(code)),
        type(type.empty() ? default_type(status) : std::move(type)) {}
  int status;
  std::string param, code, type;
  json body() const;

 private:
  static std::string default_type(int status);
};

struct Limits {
  int64_t max_tokens = 2048;    // cap on max_tokens (and its default)
  int64_t n_ctx = 2048;         // per sequence: prompt + completion
  size_t max_inputs = 256;      // texts per embeddings / classify request
  int max_depth = 32;           // JSON nesting
};

// Parses a request body: valid UTF-8 JSON, an object, nesting within limits.
json parse_body(const std::string& body, const Limits& lim);

struct GenerateRequest {
  std::string model;
  std::string prompt;  // chat: the rendered conversation (special tokens parsed)
  bool chat = false;
  model::SamplingParams params;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// /v1/chat/completions: messages rendered with the model's template by `render`.
GenerateRequest parse_chat(const json& j, const Limits& lim, const model::Model& m);
// /v1/completions.
GenerateRequest parse_completion(const json& j, const Limits& lim);

struct EncodeRequest {
  std::string model;
  std::vector<std::string> input;
  bool base64 = false;        // embeddings: encoding_format "base64"
  std::optional<int64_t> top_k;  // classify: labels per text (absent: 1)
  bool all_labels = false;       // classify: "top_k": null, every label
};
EncodeRequest parse_embeddings(const json& j, const Limits& lim);
EncodeRequest parse_classify(const json& j, const Limits& lim);

// Response bodies. `id` like "chatcmpl-<n>", `created` in Unix seconds.
json completion_body(const GenerateRequest& r, const std::string& id, int64_t created, const std::string& text,
                     const model::BatchResult& res);
json stream_chunk(const GenerateRequest& r, const std::string& id, int64_t created, const std::string* piece,
                  const char* finish_reason, bool first);
json usage_chunk(const GenerateRequest& r, const std::string& id, int64_t created, const model::BatchResult& res);
json usage_json(int64_t prompt, int64_t completion, int64_t cached = 0);

std::string base64_floats(const float* v, size_t n);

// The OpenAI finish_reason of a batcher result.
const char* finish_reason(const model::BatchResult& res);

}  // namespace halfbyte::server
