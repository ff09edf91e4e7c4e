// GET /openapi.json: an OpenAPI 3.0 description of what `halfbyte serve` accepts
// and answers, with this server's model ids and limits in it.
#include <string>

#include "server/api.hpp"

namespace halfbyte::server {

json openapi_document(const std::string& llm_id, const std::string& embed_id, bool classifier, int64_t max_tokens,
                      size_t max_inputs) {
  const json error = {{"$ref", "#/components/schemas/Error"}};
  auto errors = [&](json responses) {
    for (const char* code : {"400", "401", "404", "413", "503"})
      responses[code] = {{"description", "error"}, {"content", {{"application/json", {{"schema", error}}}}}};
    return responses;
  };
  auto ok = [](const char* what, json content) { return json{{"200", {{"description", what}, {"content", content}}}}; };
  const json obj = {{"type", "object"}};
  const json stop = {{"oneOf", json::array({{{"type", "string"}, {"minLength", 1}, {"maxLength", 256}},
                                             {{"type", "array"},
                                              {"maxItems", 4},
                                              {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 256}}}}})}};
  json sampling = {
      {"max_tokens", {{"type", "integer"}, {"minimum", 1}, {"maximum", max_tokens}}},
      {"temperature", {{"type", "number"}, {"minimum", 0}, {"maximum", 2}}},
      {"top_p", {{"type", "number"}, {"minimum", 1e-6}, {"maximum", 1}}},
      {"top_k", {{"type", "integer"}, {"minimum", 0}, {"maximum", 1 << 20}}},
      {"min_p", {{"type", "number"}, {"minimum", 0}, {"exclusiveMaximum", true}, {"maximum", 1}}},
      {"repeat_penalty", {{"type", "number"}, {"minimum", 0.01}, {"maximum", 100}}},
      {"seed", {{"type", "integer"}}},
      {"n", {{"type", "integer"}, {"enum", {1}}}},
      {"stop", stop},
      {"stream", {{"type", "boolean"}}},
      {"stream_options",
       {{"type", "object"}, {"properties", {{"include_usage", {{"type", "boolean"}, {"nullable", true}}}}}}}};
  // Optional fields may be null (taken as absent), as OpenAI's clients send them.
  for (auto& [k, v] : sampling.items()) {
    v["nullable"] = true;
    if (v.contains("enum")) v["enum"].push_back(nullptr);
  }
  json chat = {{"type", "object"}, {"required", {"model", "messages"}}, {"properties", sampling}};
  chat["properties"]["model"] = {{"type", "string"}, {"enum", {llm_id}}};
  chat["properties"]["max_completion_tokens"] = sampling["max_tokens"];
  chat["properties"]["messages"] = {
      {"type", "array"},
      {"minItems", 1},
      {"maxItems", 64},
      {"items",
       {{"type", "object"},
        {"required", {"role", "content"}},
        {"properties",
         {{"role", {{"type", "string"}, {"enum", {"system", "developer", "user", "assistant"}}}},
          {"content", {{"type", "string"}}}}}}}};
  json completion = {{"type", "object"}, {"required", {"model", "prompt"}}, {"properties", sampling}};
  completion["properties"]["model"] = {{"type", "string"}, {"enum", {llm_id}}};
  completion["properties"]["prompt"] = {{"type", "string"}, {"minLength", 1}};
  const json inputs = {{"oneOf", json::array({{{"type", "string"}},
                                               {{"type", "array"},
                                                {"minItems", 1},
                                                {"maxItems", max_inputs},
                                                {"items", {{"type", "string"}}}}})}};
  const json embed_model = embed_id.empty() ? json{{"type", "string"}} : json{{"type", "string"}, {"enum", {embed_id}}};
  json embeddings = {{"type", "object"}, {"required", {"model", "input"}}};
  embeddings["properties"]["model"] = embed_model;
  embeddings["properties"]["input"] = inputs;
  embeddings["properties"]["encoding_format"] = {{"type", "string"}, {"enum", {"float", "base64", nullptr}}, {"nullable", true}};
  json classify = {{"type", "object"}, {"required", {"model", "input"}}};
  classify["properties"]["model"] = embed_model;
  classify["properties"]["input"] = inputs;
  classify["properties"]["top_k"] = {{"type", "integer"}, {"minimum", 1}, {"nullable", true}};
  auto post = [&](const char* summary, const json& schema, json content) {
    return json{{"post",
                 {{"summary", summary},
                  {"requestBody", {{"required", true}, {"content", {{"application/json", {{"schema", schema}}}}}}},
                  {"responses", errors(ok("result", std::move(content)))}}}};
  };
  auto get = [&](const char* summary, json content) {
    return json{{"get", {{"summary", summary}, {"responses", errors(ok("result", std::move(content)))}}}};
  };
  const json any_json = {{"application/json", {{"schema", obj}}}};
  const json json_or_sse = {{"application/json", {{"schema", obj}}}, {"text/event-stream", {{"schema", json::object()}}}};
  json doc = {
      {"openapi", "3.0.3"},
      {"info", {{"title", "halfbyte serve"}, {"version", "1"},
                {"description", "OpenAI-compatible local inference (docs/server.md)"}}},
      {"components",
       {{"schemas",
         {{"Error",
           {{"type", "object"},
            {"required", {"error"}},
            {"properties",
             {{"error",
               {{"type", "object"},
                {"required", {"message", "type"}},
                {"properties",
                 {{"message", {{"type", "string"}}},
                  {"type", {{"type", "string"}}},
                  {"param", {{"type", "string"}, {"nullable", true}}},
                  {"code", {{"type", "string"}, {"nullable", true}}}}}}}}}}}}},
        {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}}};
  json& paths = doc["paths"];
  paths["/v1/chat/completions"] = post("Chat completion (stream: server-sent events)", chat, json_or_sse);
  paths["/v1/completions"] = post("Text completion (stream: server-sent events)", completion, json_or_sse);
  if (!embed_id.empty()) paths["/v1/embeddings"] = post("Sentence embeddings", embeddings, any_json);
  if (classifier) paths["/v1/classify"] = post("Text classification: top_k labels per text", classify, any_json);
  paths["/v1/models"] = get("Models served", any_json);
  paths["/health"] = get("Liveness; 503 while shutting down", any_json);
  paths["/metrics"] = get("Prometheus metrics", {{"text/plain", {{"schema", {{"type", "string"}}}}}});
  return doc;
}

}  // namespace halfbyte::server
