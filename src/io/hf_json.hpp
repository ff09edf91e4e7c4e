// JSON reading for the Hugging Face formats (safetensors headers, config.json,
// tokenizer.json, tokenizer_config.json). Every document is hostile: parse errors,
// nesting deeper than kMaxDepth, repeated object keys and wrongly typed fields are
// Error(Format) naming the file and the field. Internal to src/io; uses nlohmann
// json (header-only, a build-time dependency only).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "halfbyte/core/error.hpp"
#include "io/mapped_file.hpp"

namespace halfbyte::io::hfjson {

using json = nlohmann::json;

constexpr int kMaxDepth = 64;

namespace detail {
struct TooDeep {};
}  // namespace detail

// A value as JSON text for a message, cut to at most 60 characters.
inline std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) {
    size_t n = 57;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // whole UTF-8 characters
    s = s.substr(0, n) + "...";
  }
  return s;
}

// Parses [begin, end) as one JSON document. `file` and `what` (e.g. "header") name
// it in messages.
inline json parse(const std::string& file, const char* what, const char* begin, const char* end) {
  std::vector<std::unordered_set<std::string>> keys;  // one set per open object
  std::string duplicate;
  std::vector<bool> is_object;  // per open container
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxDepth) throw detail::TooDeep{};
        is_object.push_back(ev == json::parse_event_t::object_start);
        if (ev == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!is_object.empty()) {
          if (is_object.back()) keys.pop_back();
          is_object.pop_back();
        }
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && parsed.is_string() && !keys.back().insert(parsed.get<std::string>()).second &&
            duplicate.empty())
          duplicate = parsed.get<std::string>();
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, cb);
  } catch (const detail::TooDeep&) {
    throw_error(ErrorKind::Format, file, ": ", what, " is nested more than ", kMaxDepth, " levels deep");
  } catch (const json::exception& e) {
    throw_error(ErrorKind::Format, file, ": ", what, " is not valid JSON (", e.what(), ")");
  }
  if (!duplicate.empty())
    throw_error(ErrorKind::Format, file, ": ", what, ": key '", duplicate, "' appears twice in one object");
  return j;
}

// Reads and parses a whole JSON file of at most max_bytes (Error(Io) if it cannot
// be opened: a missing file says "No such file or directory").
inline json read_file(const std::string& path, uint64_t max_bytes) {
  const MappedFile m(path);
  if (m.size() > max_bytes)
    throw_error(ErrorKind::Format, path, ": ", m.size(), " bytes is more than the ", max_bytes,
                " this loader accepts for a JSON file");
  const char* p = reinterpret_cast<const char*>(m.data());
  return parse(path, "content", p, p + m.size());
}

// obj[key], or nullptr if obj is not an object, the key is absent or its value is null.
inline const json* find(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// An integer field in [lo, hi]; nullopt if absent or null.
inline std::optional<int64_t> opt_int(const json& obj, const std::string& file, const char* key, int64_t lo,
                                      int64_t hi) {
  const json* v = find(obj, key);
  if (!v) return std::nullopt;
  int64_t x;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max()))
      throw_error(ErrorKind::Format, file, ": ", key, " = ", u, " is out of range [", lo, ", ", hi, "]");
    x = int64_t(u);
  } else if (v->is_number_integer()) {
    x = v->get<int64_t>();
  } else {
    throw_error(ErrorKind::Format, file, ": ", key, " should be an integer, is ", brief(*v));
  }
  if (x < lo || x > hi)
    throw_error(ErrorKind::Format, file, ": ", key, " = ", x, " is out of range [", lo, ", ", hi, "]");
  return x;
}

inline int64_t req_int(const json& obj, const std::string& file, const char* key, int64_t lo, int64_t hi) {
  const auto v = opt_int(obj, file, key, lo, hi);
  if (!v) throw_error(ErrorKind::Format, file, ": required key '", key, "' is missing");
  return *v;
}

// A number field that must be finite and > 0; nullopt if absent or null.
inline std::optional<double> opt_positive(const json& obj, const std::string& file, const char* key) {
  const json* v = find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw_error(ErrorKind::Format, file, ": ", key, " should be a number, is ", brief(*v));
  const double x = v->get<double>();
  if (!(x > 0.0) || !(x < std::numeric_limits<double>::infinity()))
    throw_error(ErrorKind::Format, file, ": ", key, " = ", x, " should be a positive number");
  return x;
}

inline std::optional<bool> opt_bool(const json& obj, const std::string& file, const char* key) {
  const json* v = find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw_error(ErrorKind::Format, file, ": ", key, " should be true or false, is ", brief(*v));
  return v->get<bool>();
}

inline std::optional<std::string> opt_string(const json& obj, const std::string& file, const char* key) {
  const json* v = find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw_error(ErrorKind::Format, file, ": ", key, " should be a string, is ", brief(*v));
  return v->get<std::string>();
}

}  // namespace halfbyte::io::hfjson
