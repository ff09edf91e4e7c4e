#include "server/api.hpp"

#include <cmath>
#include <cstring>

#include "halfbyte/core/error.hpp"

namespace halfbyte::server {
namespace {

[[noreturn]] void bad(const std::string& param, const std::string& msg) { throw ApiError(400, msg, param); }

// Nesting depth of a JSON text, counted before parsing so that a nesting bomb
// never reaches the parser (or a recursive destructor).
int max_nesting(const std::string& s) {
  int depth = 0, worst = 0;
  bool in_str = false, esc = false;
  for (char c : s) {
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      worst = std::max(worst, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return worst;
}

const json* field(const json& j, const char* name) {
  auto it = j.find(name);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

std::string get_string(const json& j, const char* name, bool required) {
  const json* v = field(j, name);
  if (!v) {
    if (required) bad(name, std::string("'") + name + "' is required");
    return {};
  }
  if (!v->is_string()) bad(name, std::string("'") + name + "' must be a string");
  return v->get<std::string>();
}

std::optional<double> get_number(const json& j, const char* name, double lo, double hi) {
  const json* v = field(j, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi))
    bad(name, std::string("'") + name + "' must be in [" + json(lo).dump() + ", " + json(hi).dump() + "], got " +
                  v->dump());
  return x;
}

std::optional<int64_t> get_int(const json& j, const char* name, int64_t lo, int64_t hi) {
  const json* v = field(j, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) bad(name, std::string("'") + name + "' must be an integer");
  if (v->is_number_unsigned() ? v->get<uint64_t>() > uint64_t(hi) : (v->get<int64_t>() < lo || v->get<int64_t>() > hi))
    bad(name, std::string("'") + name + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                  "], got " + v->dump());
  return v->get<int64_t>();
}

std::optional<bool> get_bool(const json& j, const char* name) {
  const json* v = field(j, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(name, std::string("'") + name + "' must be a boolean");
  return v->get<bool>();
}

// Sampling and streaming fields shared by chat and completions.
void parse_common(const json& j, const Limits& lim, GenerateRequest& r, const char* max_name) {
  r.model = get_string(j, "model", true);
  auto& p = r.params;
  p.temperature = 1.0f;  // OpenAI's default
  p.top_p = 1.0f;
  p.top_k = 0;
  if (auto t = get_number(j, "temperature", 0.0, 2.0)) p.temperature = float(*t);
  if (auto t = get_number(j, "top_p", 0.0, 1.0)) {
    if (!(*t >= 1e-6)) bad("top_p", "'top_p' must be in [1e-06, 1], got " + json(*t).dump());
    p.top_p = float(*t);
  }
  if (auto t = get_int(j, "top_k", 0, 1 << 20)) p.top_k = int(*t);  // llama.cpp's extension
  if (auto t = get_number(j, "min_p", 0.0, 1.0)) {
    if (float(*t) >= 1.0f) bad("min_p", "'min_p' must be < 1");
    p.min_p = float(*t);
  }
  if (auto t = get_number(j, "repeat_penalty", 0.01, 100.0)) p.repeat_penalty = float(*t);
  for (const char* pen : {"presence_penalty", "frequency_penalty"})
    if (auto t = get_number(j, pen, -2.0, 2.0); t && *t != 0.0)
      bad(pen, std::string("'") + pen + "' is not supported (use repeat_penalty)");
  if (auto n = get_int(j, "n", 1, 128); n && *n != 1) bad("n", "'n' must be 1 (one choice per request)");
  if (auto lp = get_bool(j, "logprobs"); lp && *lp) bad("logprobs", "'logprobs' is not supported");
  // Both names are checked; max_completion_tokens (chat's newer name) wins.
  int64_t max_tokens = lim.max_tokens;
  bool have_max = false;
  for (const char* name : {max_name, "max_tokens"}) {
    if (auto t = get_int(j, name, INT64_MIN, INT64_MAX)) {
      if (*t < 1 || *t > lim.max_tokens)
        bad(name, std::string("'") + name + "' must be in [1, " + std::to_string(lim.max_tokens) + "], got " +
                      std::to_string(*t));
      if (!have_max) max_tokens = *t;
      have_max = true;
    }
  }
  p.max_tokens = int(max_tokens);
  if (auto s = get_int(j, "seed", INT64_MIN, INT64_MAX)) {
    p.seed = uint64_t(*s);
    p.has_seed = true;
  }
  if (const json* s = field(j, "stop")) {
    if (s->is_string()) {
      p.stop = {s->get<std::string>()};
    } else if (s->is_array()) {
      if (s->size() > 4) bad("stop", "'stop' holds at most 4 strings");
      for (const json& x : *s) {
        if (!x.is_string()) bad("stop", "'stop' must be a string or an array of strings");
        p.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "'stop' must be a string or an array of strings");
    }
    for (const auto& x : p.stop)
      if (x.empty() || x.size() > 256) bad("stop", "stop strings must be 1 to 256 bytes long");
  }
  r.stream = get_bool(j, "stream").value_or(false);
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    r.include_usage = get_bool(*so, "include_usage").value_or(false);
  }
}

std::vector<std::string> string_inputs(const json& j, const Limits& lim) {
  const json* in = field(j, "input");
  if (!in) bad("input", "'input' is required");
  std::vector<std::string> out;
  if (in->is_string()) {
    out.push_back(in->get<std::string>());
  } else if (in->is_array()) {
    if (in->empty()) bad("input", "'input' must not be empty");
    if (in->size() > lim.max_inputs)
      bad("input", "'input' holds at most " + std::to_string(lim.max_inputs) + " texts, got " +
                       std::to_string(in->size()));
    for (const json& x : *in) {
      if (!x.is_string()) bad("input", "'input' must be a string or an array of strings (token ids are not accepted)");
      out.push_back(x.get<std::string>());
    }
  } else {
    bad("input", "'input' must be a string or an array of strings");
  }
  return out;
}

}  // namespace

std::string ApiError::default_type(int status) {
  if (status == 401) return "authentication_error";
  if (status == 404) return "not_found_error";
  if (status == 429 || status == 503) return "server_overloaded";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

json ApiError::body() const {
  return {{"error",
           {{"message", what()},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

json parse_body(const std::string& body, const Limits& lim) {
  if (body.empty()) throw ApiError(400, "the request body is empty (expected a JSON object)");
  if (max_nesting(body) > lim.max_depth)
    throw ApiError(400, "the JSON body is nested more than " + std::to_string(lim.max_depth) + " levels deep");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "the body must be a JSON object");
  return j;
}

GenerateRequest parse_chat(const json& j, const Limits& lim, const model::Model& m) {
  GenerateRequest r;
  r.chat = true;
  parse_common(j, lim, r, "max_completion_tokens");
  const json* msgs = field(j, "messages");
  if (!msgs) bad("messages", "'messages' is required");
  if (!msgs->is_array() || msgs->empty()) bad("messages", "'messages' must be a non-empty array");
  std::vector<model::ChatMessage> conv;
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& mj = (*msgs)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!mj.is_object()) bad(at, at + " must be an object");
    model::ChatMessage cm;
    const json* role = field(mj, "role");
    if (!role || !role->is_string()) bad(at + ".role", at + ".role must be a string");
    cm.role = role->get<std::string>();
    if (cm.role == "developer") cm.role = "system";
    if (cm.role != "system" && cm.role != "user" && cm.role != "assistant")
      bad(at + ".role", at + ".role must be system, developer, user or assistant, got '" + cm.role + "'");
    const json* content = field(mj, "content");
    if (!content) {
      if (cm.role != "assistant") bad(at + ".content", at + ".content is required");
    } else if (content->is_string()) {
      cm.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (const json& part : *content) {
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
            !part["text"].is_string())
          bad(at + ".content", at + ".content parts must be {\"type\": \"text\", \"text\": ...} (text only)");
        cm.content += part["text"].get<std::string>();
      }
    } else {
      bad(at + ".content", at + ".content must be a string or an array of text parts");
    }
    conv.push_back(std::move(cm));
  }
  try {
    r.prompt = m.chat_prompt(conv, true);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "messages");
  }
  return r;
}

GenerateRequest parse_completion(const json& j, const Limits& lim) {
  GenerateRequest r;
  parse_common(j, lim, r, "max_tokens");
  if (!j.contains("max_tokens") || j["max_tokens"].is_null()) r.params.max_tokens = 16;  // OpenAI's default
  r.params.max_tokens = int(std::min<int64_t>(r.params.max_tokens, lim.max_tokens));
  const json* p = field(j, "prompt");
  if (!p) bad("prompt", "'prompt' is required");
  if (p->is_string()) r.prompt = p->get<std::string>();
  else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) r.prompt = (*p)[0].get<std::string>();
  else bad("prompt", "'prompt' must be a string (or an array of one string)");
  if (auto e = get_bool(j, "echo"); e && *e) bad("echo", "'echo' is not supported");
  if (field(j, "suffix")) bad("suffix", "'suffix' is not supported");
  return r;
}

EncodeRequest parse_embeddings(const json& j, const Limits& lim) {
  EncodeRequest r;
  r.model = get_string(j, "model", true);
  r.input = string_inputs(j, lim);
  const std::string fmt = field(j, "encoding_format") ? get_string(j, "encoding_format", false) : "float";
  if (fmt != "float" && fmt != "base64")
    bad("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
  r.base64 = fmt == "base64";
  if (field(j, "dimensions")) bad("dimensions", "'dimensions' is not supported (the model's size is fixed)");
  return r;
}

EncodeRequest parse_classify(const json& j, const Limits& lim) {
  EncodeRequest r;
  r.model = get_string(j, "model", true);
  r.input = string_inputs(j, lim);
  if (j.contains("top_k") && j["top_k"].is_null()) r.all_labels = true;
  else r.top_k = get_int(j, "top_k", 1, 1 << 20).value_or(1);
  return r;
}

const char* finish_reason(const model::BatchResult& res) {
  return res.finish_reason == "length" ? "length" : "stop";
}

json usage_json(int64_t prompt, int64_t completion, int64_t cached) {
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json completion_body(const GenerateRequest& r, const std::string& id, int64_t created, const std::string& text,
                     const model::BatchResult& res) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason(res)}, {"logprobs", nullptr}};
  if (r.chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  return {{"id", id},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(res.prompt_tokens, res.completion_tokens, res.cached_tokens)}};
}

json stream_chunk(const GenerateRequest& r, const std::string& id, int64_t created, const std::string* piece,
                  const char* finish, bool first) {
  json choice = {{"index", 0}, {"finish_reason", finish ? json(finish) : json(nullptr)}, {"logprobs", nullptr}};
  if (r.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (piece) delta["content"] = *piece;
    else if (first) delta["content"] = "";
    choice["delta"] = delta;
  } else {
    choice["text"] = piece ? *piece : std::string();
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})}};
}

json usage_chunk(const GenerateRequest& r, const std::string& id, int64_t created, const model::BatchResult& res) {
  return {{"id", id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array()},
          {"usage", usage_json(res.prompt_tokens, res.completion_tokens, res.cached_tokens)}};
}

std::string base64_floats(const float* v, size_t n) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* b = reinterpret_cast<const unsigned char*>(v);  // little-endian float32, as OpenAI sends
  const size_t len = n * sizeof(float);
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  for (size_t i = 0; i < len; i += 3) {
    const uint32_t x = uint32_t(b[i]) << 16 | (i + 1 < len ? uint32_t(b[i + 1]) << 8 : 0) |
                       (i + 2 < len ? uint32_t(b[i + 2]) : 0);
    out += tbl[(x >> 18) & 63];
    out += tbl[(x >> 12) & 63];
    out += i + 1 < len ? tbl[(x >> 6) & 63] : '=';
    out += i + 2 < len ? tbl[x & 63] : '=';
  }
  return out;
}

}  // namespace halfbyte::server
