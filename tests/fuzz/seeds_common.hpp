// Shared pieces of the fuzz seed writer (make_fuzz_seeds: make_seeds.cpp, the model
// files; make_seeds_hf.cpp, the Hugging Face ones): byte buffers, saving a seed, and
// the test vocabularies both the GGUF and the tokenizer.json seeds use.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../byte_writer.hpp"

namespace halfbyte::fuzz::seeds {

namespace fs = std::filesystem;

using test::Bytes;

inline void save(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "make_fuzz_seeds: cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::printf("%7zu  %s\n", bytes.size(), path.c_str());
}

inline std::vector<uint8_t> text(const std::string& s) { return {s.begin(), s.end()}; }

// --- vocabularies -----------------------------------------------------------
inline const std::string kSpace = "\xE2\x96\x81";  // U+2581

struct SpmVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

// <unk> <s> </s>, 256 byte tokens, then pieces (best score first), a few specials.
inline SpmVocab spm_vocab() {
  SpmVocab v;
  auto add = [&](const std::string& t, int32_t type) {
    v.tokens.push_back(t);
    v.scores.push_back(type == 1 ? -float(v.tokens.size()) : 0.0f);
    v.types.push_back(type);
  };
  add("<unk>", 2);
  add("<s>", 3);
  add("</s>", 3);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) add(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">", 6);
  for (const char* p : {"_t", "he", "_the", "_H", "ello", "_w", "or", "ld", "_a", "pp", "le", "_c", "af", "_n",
                        "ve", "12", "123", "_It", "'s", "_1", "in", "_in", "an", "_an", "er", "on", "_", "e", "l",
                        "o", "r", "d", "h", "t", "w", "a", "p", "s", "c", "f", "n", "v", "i", "I", "'", "1", "2",
                        "3", "!", ",", ".", ":", "\xC3\xA9", "\xC3\xAF", "\xE4\xBD\xA0", "\xE5\xA5\xBD"}) {
    std::string s;
    for (const char* c = p; *c; ++c) s += *c == '_' ? kSpace : std::string(1, *c);
    add(s, 1);
  }
  add("<|im_start|>", 3);
  add("<|im_end|>", 3);
  add("[INST]", 4);
  return v;
}

// GPT-2's byte -> printable stand-in code point, as UTF-8.
inline std::string byte_char(int b) {
  static int cp[256];
  static bool init = false;
  if (!init) {
    int extra = 0;
    for (int x = 0; x < 256; ++x) {
      const bool printable = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
      cp[x] = printable ? x : 256 + extra++;
    }
    init = true;
  }
  const int c = cp[b];
  if (c < 0x80) return std::string(1, char(c));
  return {char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
}

struct BpeVocab {
  std::vector<std::string> tokens, merges;
  std::vector<int32_t> types;
};

inline BpeVocab bpe_vocab() {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(byte_char(b));
    v.types.push_back(1);
  }
  const std::string G = byte_char(' '), C = byte_char('\n');
  const std::vector<std::pair<std::string, std::string>> merges = {
      {G, "t"}, {"h", "e"}, {G + "t", "he"}, {G, "w"}, {"o", "r"}, {G + "w", "or"}, {"l", "d"}, {G + "wor", "ld"},
      {"H", "e"}, {"He", "l"}, {"Hel", "l"}, {"Hell", "o"}, {"1", "2"}, {"12", "3"}, {"'", "s"}, {G, G},
      {C, C}, {G, "a"}, {"p", "p"}, {G + "a", "pp"}, {"l", "e"}, {"i", "n"}, {G, "in"}, {"e", "r"}};
  for (const auto& [a, b] : merges) {
    v.merges.push_back(a + " " + b);
    v.tokens.push_back(a + b);
    v.types.push_back(1);
  }
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    v.tokens.push_back(s);
    v.types.push_back(3);
  }
  v.tokens.push_back("<tool>");
  v.types.push_back(4);
  return v;
}

// The safetensors, tokenizer.json and config.json seeds (make_seeds_hf.cpp) under root.
void write_hf_seeds(const fs::path& root);

}  // namespace halfbyte::fuzz::seeds
