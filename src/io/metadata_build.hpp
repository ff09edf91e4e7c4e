// Building GGUF metadata values by hand: how the non-GGUF loaders (llama2.c,
// safetensors, tokenizer files) describe a model under GGUF's keys. Internal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "halfbyte/io/gguf.hpp"

namespace halfbyte::io::meta {

inline GgufValue u32(uint64_t v) { return GgufValue{GgufType::U32, v}; }
inline GgufValue i32(int64_t v) { return GgufValue{GgufType::I32, v}; }
inline GgufValue f32(double v) { return GgufValue{GgufType::F32, v}; }
inline GgufValue boolean(bool v) { return GgufValue{GgufType::BOOL, v}; }
inline GgufValue str(std::string v) { return GgufValue{GgufType::STRING, std::move(v)}; }

inline GgufValue str_array(std::vector<std::string> items) {
  auto a = std::make_shared<GgufArray>();
  a->type = GgufType::STRING;
  a->items.reserve(items.size());
  for (auto& s : items) a->items.push_back(str(std::move(s)));
  return GgufValue{GgufType::ARRAY, std::move(a)};
}
inline GgufValue f32_array(const std::vector<float>& items) {
  auto a = std::make_shared<GgufArray>();
  a->type = GgufType::F32;
  a->items.reserve(items.size());
  for (float v : items) a->items.push_back(f32(v));
  return GgufValue{GgufType::ARRAY, std::move(a)};
}
inline GgufValue i32_array(const std::vector<int32_t>& items) {
  auto a = std::make_shared<GgufArray>();
  a->type = GgufType::I32;
  a->items.reserve(items.size());
  for (int32_t v : items) a->items.push_back(i32(v));
  return GgufValue{GgufType::ARRAY, std::move(a)};
}

// A tensor of `type` with GGUF shape ne (ne[0] fastest) at `offset` in source `src`.
GgufTensorInfo tensor(std::string name, std::vector<int64_t> ne, GgmlType type, uint64_t offset, uint32_t src = 0);

}  // namespace halfbyte::io::meta
