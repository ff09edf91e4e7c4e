// `halfbyte info MODEL`: metadata and tensors of a GGUF file.
#include <cstdio>
#include <map>
#include <string>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "halfbyte/io/model_file.hpp"

namespace halfbyte::cli {
namespace {

std::string show(const io::GgufValue& v, const std::string& key) {
  using io::GgufType;
  switch (v.type) {
    case GgufType::STRING: {
      std::string s = v.as_string(key);
      if (s.size() > 80) s = s.substr(0, 77) + "...";
      for (char& c : s)
        if (c == '\n') c = ' ';
      return "\"" + s + "\"";
    }
    case GgufType::ARRAY: {
      const auto& a = v.as_array(key);
      std::string s = "[" + std::string(io::gguf_type_name(a.type)) + " x " + std::to_string(a.items.size()) + "]";
      return s;
    }
    case GgufType::BOOL: return v.as_bool(key) ? "true" : "false";
    case GgufType::F32:
    case GgufType::F64: return std::to_string(v.as_float(key));
    default: return std::to_string(v.as_int(key));
  }
}

}  // namespace

int cmd_info(const Args& args) {
  std::string path, tokenizer;
  bool tensors = true;
  ArgReader r(args, "info");
  while (!r.done()) {
    const std::string& a = r.next();
    if (a == "--no-tensors") tensors = false;
    else if (a == "--tokenizer") tokenizer = r.value(a);
    else if (a == "-h" || a == "--help") {
      std::printf("usage: halfbyte info MODEL [--tokenizer FILE] [--no-tensors]\nLists the metadata and tensors of a model (GGUF, llama2.c or safetensors; the\nlatter two under GGUF's key and tensor names).\n");
      return 0;
    } else if (!a.empty() && a[0] != '-' && path.empty()) path = a;
    else r.unknown(a);
  }
  if (path.empty()) throw_invalid("MODEL is required (see halfbyte info --help)");
  const io::GgufFile f = io::open_model_file(path, tokenizer);
  const std::string format = f.format() == "gguf" ? "GGUF v" + std::to_string(f.version()) : f.format();
  std::printf("%s: %s, %zu metadata keys, %zu tensors, %llu bytes\n", path.c_str(), format.c_str(),
              f.metadata().size(), f.tensors().size(), (unsigned long long)f.file_size());
  for (const auto& [k, v] : f.metadata()) std::printf("  %-44s %s\n", k.c_str(), show(v, k).c_str());
  if (tensors) {
    std::map<std::string, std::pair<int, uint64_t>> by_type;
    for (const auto& t : f.tensors()) {
      std::string shape;
      for (size_t i = 0; i < t.ne.size(); ++i) shape += (i ? " x " : "") + std::to_string(t.ne[i]);
      std::printf("  %-36s %-6s [%s] %llu bytes\n", t.name.c_str(), io::ggml_type_info(t.type).name, shape.c_str(),
                  (unsigned long long)t.nbytes);
      auto& e = by_type[io::ggml_type_info(t.type).name];
      ++e.first;
      e.second += t.nbytes;
    }
    for (const auto& [type, e] : by_type)
      std::printf("  %s: %d tensors, %llu bytes\n", type.c_str(), e.first, (unsigned long long)e.second);
  }
  return 0;
}

}  // namespace halfbyte::cli
