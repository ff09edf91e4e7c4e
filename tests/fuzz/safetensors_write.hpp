// Writing small .safetensors files byte by byte from the format's definition (not
// by halfbyte): the seeds (make_seeds.cpp and make_seeds_hf.cpp, a plain build) and
// the fixed files some targets put beside their input (fuzz_hf_tokenizer,
// fuzz_encoder_config).
//
// u64 little-endian N, N bytes of JSON {"__metadata__": {...}, name: {"dtype",
// "shape" (row-major), "data_offsets": [begin, end]}, ...} padded with spaces to a
// multiple of 8 (as the safetensors library writes it), then the data; offsets
// count from byte 8 + N.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace halfbyte::fuzz::st {

struct Tensor {
  std::string name, dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> data;
};

// A JSON string literal of s (UTF-8 passed through).
inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

// metadata: the JSON object of __metadata__, or "" for none.
inline std::vector<uint8_t> file(const std::vector<Tensor>& tensors, const std::string& metadata = R"({"format":"pt"})") {
  std::string h = "{";
  if (!metadata.empty()) h += "\"__metadata__\":" + metadata;
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    if (h.size() > 1) h += ",";
    h += json_string(t.name) + ":{\"dtype\":" + json_string(t.dtype) + ",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.data.size()) + "]}";
    offset += t.data.size();
  }
  h += "}";
  while (h.size() % 8 != 0) h += ' ';
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(uint64_t(h.size()) >> (8 * i));
  out.insert(out.end(), h.begin(), h.end());
  for (const Tensor& t : tensors) out.insert(out.end(), t.data.begin(), t.data.end());
  return out;
}

// Little-endian element bytes.
inline std::vector<uint8_t> f32(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    for (int b = 0; b < 4; ++b) out[i * 4 + size_t(b)] = uint8_t(u >> (8 * b));
  }
  return out;
}
inline std::vector<uint8_t> bf16(const std::vector<float>& v) {  // truncated: exact for the values used
  std::vector<uint8_t> out(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    out[i * 2] = uint8_t(u >> 16);
    out[i * 2 + 1] = uint8_t(u >> 24);
  }
  return out;
}
// IEEE half of a normal float in the half range (or zero), mantissa truncated.
inline std::vector<uint8_t> f16(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const int exp = int((u >> 23) & 0xFF) - 127 + 15;
    const uint16_t h = v[i] == 0.0f ? uint16_t(sign) : uint16_t(sign | (uint32_t(exp) << 10) | ((u >> 13) & 0x3FF));
    out[i * 2] = uint8_t(h);
    out[i * 2 + 1] = uint8_t(h >> 8);
  }
  return out;
}

// n values of a fixed pattern in [-scale, scale], different per `seed`.
inline std::vector<float> pattern(size_t n, uint32_t seed, float scale = 0.5f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * float(int((i * 37 + seed * 11 + 5) % 29) - 14) / 14.0f;
  return v;
}

}  // namespace halfbyte::fuzz::st
