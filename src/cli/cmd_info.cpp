// `halfbyte info MODEL`: metadata and tensors of a GGUF file.
#include <cstdio>
#include <map>
#include <string>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "halfbyte/io/model_file.hpp"
#include "halfbyte/model/model.hpp"

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

std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%9.1f MB", double(bytes) / 1e6);
  return buf;
}

// `info --memory`: load the model as `run` would and say where its memory goes.
int print_memory(const std::string& path, const std::string& tokenizer, int64_t n_ctx, const std::string& kv_cache) {
  model::LoadOptions o;
  o.tokenizer = tokenizer;
  o.n_ctx = n_ctx;
  o.kv_f16 = kv_cache != "f32";
  const auto m = model::Model::load(path, o);
  const model::MemoryReport r = m->memory();
  std::printf("%s: n_ctx %lld, KV cache %s\n", path.c_str(), (long long)m->n_ctx(), o.kv_f16 ? "f16" : "f32");
  std::printf("  %-40s %s\n", "file (mapped, shared page cache)", mb(r.file).c_str());
  std::printf("  %-40s %s\n", "weights, repacked / converted (owned)", mb(r.weights_owned).c_str());
  std::printf("  %-40s %s  (%s resident now)\n", "weights, read in place from the file", mb(r.weights_mapped).c_str(),
              mb(r.mapped_resident).c_str());
  std::printf("  %-40s %s  (%s resident now)\n", "KV cache, reserved for n_ctx", mb(r.kv_cache).c_str(),
              mb(r.kv_cache_resident).c_str());
  std::printf("  %-40s %s  (%s resident now)\n", "scratch, reserved for n_batch", mb(r.scratch).c_str(),
              mb(r.scratch_resident).c_str());
  std::printf("  %-40s %s\n", "tokenizer", mb(r.tokenizer).c_str());
  std::printf("  %-40s %s\n  %-40s %s\n", "resident now", mb(r.resident()).c_str(),
              "at most (full context, every row read)", mb(r.reserved()).c_str());
  return 0;
}

}  // namespace

int cmd_info(const Args& args) {
  std::string path, tokenizer, kv_cache = "f16";
  bool tensors = true, memory = false;
  int64_t n_ctx = 0;
  ArgReader r(args, "info");
  while (!r.done()) {
    const std::string& a = r.next();
    if (a == "--no-tensors") tensors = false;
    else if (a == "--tokenizer") tokenizer = r.value(a);
    else if (a == "--memory") memory = true;
    else if (a == "--ctx") n_ctx = r.integer(a, 1, 1L << 24);
    else if (a == "--kv-cache") kv_cache = r.value(a);
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: halfbyte info MODEL [--tokenizer FILE] [--no-tensors]\n"
          "       halfbyte info --memory MODEL [--ctx N] [--kv-cache f16|f32] [--tokenizer FILE]\n"
          "Lists the metadata and tensors of a model (GGUF, llama2.c or safetensors; the\n"
          "latter two under GGUF's key and tensor names). With --memory, loads the model\n"
          "and reports the bytes of its weights (repacked / read in place), KV cache and\n"
          "scratch (default n_ctx: the model's, at most 4096).\n");
      return 0;
    } else if (!a.empty() && a[0] != '-' && path.empty()) path = a;
    else r.unknown(a);
  }
  if (path.empty()) throw_invalid("MODEL is required (see halfbyte info --help)");
  if (kv_cache != "f16" && kv_cache != "f32") throw_invalid("--kv-cache must be f16 or f32, got '", kv_cache, "'");
  if (memory) return print_memory(path, tokenizer, n_ctx, kv_cache);
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
