// Hugging Face safetensors models: a folder with config.json and the weights in
// model.safetensors, in shards listed by model.safetensors.index.json, or in any
// *.safetensors files; or one .safetensors file in such a folder (with its
// sibling shards if the folder's index lists it). tokenizer.json (and
// tokenizer_config.json) in the folder supply the vocabulary (hf_tokenizer.cpp).
//
// A .safetensors file: u64 little-endian N, N bytes of JSON {name: {"dtype",
// "shape" (row-major), "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data; offsets count from byte 8 + N. A row-major [rows, cols] weight is
// GGUF's ne = {cols, rows}, so tensors point into the mapped files unchanged.
//
// open_safetensors_tensors() stops there: every tensor under its HF name, for
// architectures whose loader reads config.json itself (the BERT encoder); those
// of GGUF's shapes only (1 to 4 dimensions, none 0; a scalar becomes [1]).
//
// config.json (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM) becomes
// GGUF's <arch>.* keys. HF keeps Q and K rows in the "half" RoPE layout (not
// permuted as llama.cpp's converter does), so every model says
// halfbyte.rope_neox = true. Choices:
//   - rope scaling other than "default" and partial rotary embeddings are refused
//     (Unsupported): the decoder implements plain RoPE only.
//   - a sliding window that can matter (Mistral's sliding_window, Qwen2's
//     use_sliding_window / sliding layer types) below max_position_embeddings caps
//     context_length at the window, so the default context is exact; a longer n_ctx
//     asked for explicitly attends to all keys.
//   - tensor names outside the decoder (biases on o_proj or the MLP, classifier
//     heads, ...) are refused rather than silently dropped; rotary_emb.inv_freq
//     buffers are ignored, and so is lm_head.weight when tie_word_embeddings.
//   - only tensors the model uses need dtype F32, F16 or BF16.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/model_file.hpp"
#include "io/hf_json.hpp"
#include "io/mapped_file.hpp"
#include "io/metadata_build.hpp"

namespace halfbyte::io {
namespace {

namespace fs = std::filesystem;
using hfjson::json;

constexpr uint64_t kMaxHeader = 100000000;  // the safetensors format's own limit
constexpr uint64_t kMaxConfig = uint64_t(16) << 20;
constexpr uint64_t kMaxIndex = uint64_t(256) << 20;
constexpr uint64_t kMaxDim = uint64_t(1) << 53;
constexpr int64_t kMaxSize = int64_t(1) << 24;  // bound on config.json's sizes

struct Dtype {
  const char* name;
  uint64_t bytes;
  GgmlType type;  // meaningful if `read`
  bool read;      // halfbyte reads it
};
// The safetensors dtypes of whole bytes; others (sub-byte floats, future names)
// only matter, as errors, if a used tensor has one.
constexpr Dtype kDtypes[] = {
    {"F32", 4, GgmlType::F32, true},   {"F16", 2, GgmlType::F16, true},  {"BF16", 2, GgmlType::BF16, true},
    {"F64", 8, GgmlType::F64, false},  {"I64", 8, GgmlType::I64, false}, {"U64", 8, GgmlType::I64, false},
    {"I32", 4, GgmlType::I32, false},  {"U32", 4, GgmlType::I32, false}, {"I16", 2, GgmlType::I16, false},
    {"U16", 2, GgmlType::I16, false},  {"I8", 1, GgmlType::I8, false},   {"U8", 1, GgmlType::I8, false},
    {"BOOL", 1, GgmlType::I8, false},  {"F8_E4M3", 1, GgmlType::I8, false}, {"F8_E5M2", 1, GgmlType::I8, false},
    {"F8_E8M0", 1, GgmlType::I8, false}, {"C64", 8, GgmlType::I64, false},
};

const Dtype* find_dtype(const std::string& s) {
  for (const Dtype& d : kDtypes)
    if (s == d.name) return &d;
  return nullptr;
}

// One tensor of a safetensors header, validated except for the dtype's meaning.
struct Raw {
  std::string dtype;
  const Dtype* dt;              // nullptr: not a dtype of whole bytes this loader knows
  std::vector<uint64_t> shape;  // row-major, as written
  uint64_t offset, nbytes;      // absolute in the file
  uint32_t source;
};

uint64_t read_u64le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Reads one file's header into `out` (HF name -> tensor); names already there
// (from another shard) are an error.
void read_header(const MappedFile& m, uint32_t source, std::map<std::string, Raw>& out,
                 const std::vector<std::unique_ptr<MappedFile>>& maps) {
  const std::string& path = m.path();
  const uint64_t size = m.size();
  if (size < 8)
    throw_error(ErrorKind::Format, path, ": too short for a safetensors file (", size,
                " bytes; the header length alone takes 8)");
  const uint64_t n = read_u64le(m.data());
  if (n > size - 8)
    throw_error(ErrorKind::Format, path, ": header length ", n, " is beyond the end of the file (", size, " bytes)");
  if (n > kMaxHeader)
    throw_error(ErrorKind::Format, path, ": header length ", n, " is more than the format's limit of ", kMaxHeader);
  const char* text = reinterpret_cast<const char*>(m.data() + 8);
  const json h = hfjson::parse(path, "header", text, text + n);
  if (!h.is_object()) throw_error(ErrorKind::Format, path, ": header is not a JSON object");
  const uint64_t data_start = 8 + n, data_size = size - data_start;
  for (const auto& [name, e] : h.items()) {
    if (name == "__metadata__") {
      if (!e.is_object()) throw_error(ErrorKind::Format, path, ": header: __metadata__ is not an object");
      continue;
    }
    const std::string at = path + ": header: tensor '" + name + "'";
    if (!e.is_object()) throw_error(ErrorKind::Format, at, " is not an object");
    Raw r;
    r.source = source;
    const json* dtype = hfjson::find(e, "dtype");
    if (!dtype || !dtype->is_string()) throw_error(ErrorKind::Format, at, ": dtype is missing or not a string");
    r.dtype = dtype->get<std::string>();
    r.dt = find_dtype(r.dtype);
    const json* shape = hfjson::find(e, "shape");
    if (!shape || !shape->is_array() || shape->size() > 8)
      throw_error(ErrorKind::Format, at, ": shape is missing or not an array of at most 8 sizes");
    uint64_t numel = 1;
    for (const json& d : *shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > kMaxDim)
        throw_error(ErrorKind::Format, at, ": shape ", hfjson::brief(*shape), " has an entry that is not a size");
      r.shape.push_back(d.get<uint64_t>());
      if (__builtin_mul_overflow(numel, r.shape.back(), &numel))
        throw_error(ErrorKind::Format, at, ": shape ", hfjson::brief(*shape), " overflows");
    }
    const json* off = hfjson::find(e, "data_offsets");
    if (!off || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      throw_error(ErrorKind::Format, at, ": data_offsets should be [begin, end], is ",
                  off ? hfjson::brief(*off) : std::string("missing"));
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data_size)
      throw_error(ErrorKind::Format, at, ": data_offsets [", begin, ", ", end, "] are outside the ", data_size,
                  " bytes of data");
    uint64_t bytes = 0;
    if (r.dt && (__builtin_mul_overflow(numel, r.dt->bytes, &bytes) || bytes != end - begin))
      throw_error(ErrorKind::Format, at, ": data_offsets [", begin, ", ", end, "] hold ", end - begin,
                  " bytes, but shape ", hfjson::brief(*shape), " of ", r.dtype, " needs ", numel, " x ", r.dt->bytes);
    r.offset = data_start + begin;
    r.nbytes = end - begin;
    const auto [it, fresh] = out.emplace(name, std::move(r));
    if (!fresh)
      throw_error(ErrorKind::Format, path, ": tensor '", name, "' is also in ", maps[it->second.source]->path());
  }
}

// The .safetensors files of a model and the folder that holds config.json.
struct Sources {
  fs::path dir;
  std::vector<std::string> files;
  std::string index_path;                     // empty without an index
  std::map<std::string, std::string> index;   // tensor -> file name, from the index
};

Sources find_sources(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw_error(ErrorKind::Io, path, ": cannot open: No such file or directory");
  Sources s;
  const bool is_dir = fs::is_directory(path, ec);
  s.dir = is_dir ? fs::path(path) : fs::path(path).parent_path();
  if (s.dir.filename().empty()) s.dir = s.dir.parent_path();  // "folder/"
  if (s.dir.empty()) s.dir = ".";
  const fs::path index = s.dir / "model.safetensors.index.json";
  if (fs::exists(index, ec)) {
    s.index_path = index.string();
    const json j = hfjson::read_file(s.index_path, kMaxIndex);
    const json* wm = hfjson::find(j, "weight_map");
    if (!wm || !wm->is_object())
      throw_error(ErrorKind::Format, s.index_path, ": weight_map is missing or not an object");
    std::set<std::string> names;
    for (const auto& [tensor, file] : wm->items()) {
      const std::string f = file.is_string() ? file.get<std::string>() : std::string();
      if (f.empty() || f[0] == '.' || f.find('/') != std::string::npos || f.find('\\') != std::string::npos ||
          f.size() < 12 || f.compare(f.size() - 12, 12, ".safetensors") != 0)
        throw_error(ErrorKind::Format, s.index_path, ": weight_map['", tensor, "'] = ", hfjson::brief(file),
                    " is not the name of a .safetensors file in the folder");
      s.index[tensor] = f;
      names.insert(f);
    }
    const std::string self = fs::path(path).filename().string();
    if (is_dir || names.count(self)) {
      for (const std::string& f : names) s.files.push_back((s.dir / f).string());
      return s;
    }
    s.index_path.clear();  // a single file that the index does not list
    s.index.clear();
  }
  if (!is_dir) {
    s.files.push_back(path);
  } else if (fs::exists(s.dir / "model.safetensors", ec)) {
    s.files.push_back((s.dir / "model.safetensors").string());
  } else {
    for (const auto& entry : fs::directory_iterator(s.dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0)
        s.files.push_back(entry.path().string());
    }
    std::sort(s.files.begin(), s.files.end());
    if (s.files.empty())
      throw_error(ErrorKind::Io, path, ": no model.safetensors (nor any *.safetensors file) in this folder");
  }
  return s;
}

// HF tensor name -> GGUF name; "" for tensors the model does not use.
std::string gguf_name(const std::string& cfg, const std::string& hf, int64_t n_layer, bool tied) {
  static const std::pair<const char*, const char*> kTop[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},        {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},            {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},            {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"}, {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},             {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  const std::string inv_freq = "rotary_emb.inv_freq";
  if (hf.size() >= inv_freq.size() && hf.compare(hf.size() - inv_freq.size(), inv_freq.size(), inv_freq) == 0)
    return "";
  if (tied && hf == "lm_head.weight") return "";
  for (const auto& [from, to] : kTop)
    if (hf == from) return to;
  const std::string prefix = "model.layers.";
  if (hf.compare(0, prefix.size(), prefix) == 0) {
    size_t i = prefix.size();
    int64_t layer = 0;
    const size_t digits_from = i;
    while (i < hf.size() && i - digits_from < 9 && hf[i] >= '0' && hf[i] <= '9') layer = layer * 10 + (hf[i++] - '0');
    const bool number = i > digits_from && i < hf.size() && hf[i] == '.' &&
                        (hf[digits_from] != '0' || i == digits_from + 1);  // no leading zeros
    if (number) {
      const std::string rest = hf.substr(i + 1);
      for (const auto& [from, to] : kLayer) {
        if (rest != from) continue;
        if (layer >= n_layer)
          throw_error(ErrorKind::Format, cfg, ": the weights have tensor '", hf, "', but num_hidden_layers is ",
                      n_layer);
        return "blk." + std::to_string(layer) + "." + to;
      }
    }
  }
  throw_error(ErrorKind::Unsupported, cfg, ": tensor '", hf,
              "' is not part of the Llama/Mistral/Qwen2 decoder halfbyte runs (it would be ignored, changing the "
              "model)");
}

// Reads config.json into GGUF metadata. Returns the architecture name.
std::string read_config(const std::string& file, const json& c, std::map<std::string, GgufValue>& kv, bool& tied) {
  using namespace hfjson;
  if (!c.is_object()) throw_error(ErrorKind::Format, file, ": not a JSON object");
  static const std::pair<const char*, const char*> kArchs[] = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}};
  const std::optional<std::string> model_type = opt_string(c, file, "model_type");
  std::vector<std::string> classes;
  if (const json* a = find(c, "architectures")) {
    if (!a->is_array()) throw_error(ErrorKind::Format, file, ": architectures should be a list of class names");
    for (const json& x : *a) {
      if (!x.is_string()) throw_error(ErrorKind::Format, file, ": architectures should be a list of class names");
      classes.push_back(x.get<std::string>());
    }
  }
  std::string arch;
  for (const auto& [type, cls] : kArchs) {
    const bool listed = std::find(classes.begin(), classes.end(), cls) != classes.end();
    if (model_type ? *model_type == type : listed) arch = type;
  }
  std::string known_class;
  for (const auto& [type, cls] : kArchs)
    if (std::find(classes.begin(), classes.end(), cls) != classes.end()) known_class = cls;
  if (!model_type && classes.empty())
    throw_error(ErrorKind::Format, file, ": neither model_type nor architectures is given");
  if (model_type && (*model_type == "bert" || *model_type == "distilbert"))
    throw_error(ErrorKind::Unsupported, file, ": model_type '", *model_type,
                "' is an encoder: load it with halfbyte::model::Encoder (Python: halfbyte.Encoder)");
  if (arch.empty() || (!classes.empty() && known_class.empty())) {
    std::string what = model_type ? "model_type '" + *model_type + "'" : "";
    for (const std::string& cl : classes) what += (what.empty() ? "" : ", ") + cl;
    throw_error(ErrorKind::Unsupported, file, ": ", what,
                " is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  }
  if (const auto act = opt_string(c, file, "hidden_act"); act && *act != "silu")
    throw_error(ErrorKind::Unsupported, file, ": hidden_act '", *act, "' is not supported (silu)");

  const int64_t D = req_int(c, file, "hidden_size", 1, kMaxSize);
  const int64_t F = req_int(c, file, "intermediate_size", 1, kMaxSize);
  const int64_t L = req_int(c, file, "num_hidden_layers", 1, 1 << 16);
  const int64_t H = req_int(c, file, "num_attention_heads", 1, 1 << 16);
  const int64_t Hkv = opt_int(c, file, "num_key_value_heads", 1, 1 << 16).value_or(H);
  const int64_t V = req_int(c, file, "vocab_size", 1, kMaxSize);
  int64_t ctx = req_int(c, file, "max_position_embeddings", 1, int64_t(1) << 30);
  const std::optional<int64_t> hd = opt_int(c, file, "head_dim", 1, 1 << 16);
  if (!hd && D % H != 0)
    throw_error(ErrorKind::Format, file, ": hidden_size ", D, " is not a multiple of num_attention_heads ", H,
                " and head_dim is not given");
  const int64_t head_dim = hd.value_or(D / H);
  const double eps = opt_positive(c, file, "rms_norm_eps").value_or(1e-6);  // transformers' default

  // RoPE: transformers 5 writes rope_parameters {rope_type, rope_theta, ...};
  // older versions rope_theta and rope_scaling {type or rope_type, factor, ...}.
  double theta = opt_positive(c, file, "rope_theta").value_or(10000.0);
  std::string rope_type = "default";
  const std::string rp_file = file + ": rope_parameters", rs_file = file + ": rope_scaling";
  const json* rp = find(c, "rope_parameters");
  const json* rs = find(c, "rope_scaling");
  for (const auto& [obj, where] : {std::pair{rp, &rp_file}, std::pair{rs, &rs_file}}) {
    if (!obj) continue;
    if (!obj->is_object()) throw_error(ErrorKind::Format, *where, " should be an object");
    if (auto t = opt_positive(*obj, *where, "rope_theta")) theta = *t;
    const auto rt = opt_string(*obj, *where, "rope_type");
    const auto t2 = opt_string(*obj, *where, "type");
    if (rt || t2) rope_type = rt ? *rt : *t2;
    else if (!find(*obj, "rope_theta") && !obj->empty())
      throw_error(ErrorKind::Unsupported, *where, ": per-layer RoPE parameters are not supported");
    if (auto p = opt_positive(*obj, *where, "partial_rotary_factor"); p && *p != 1.0)
      throw_error(ErrorKind::Unsupported, *where, ": partial_rotary_factor ", *p, " is not supported");
  }
  if (rope_type != "default")
    throw_error(ErrorKind::Unsupported, file, ": RoPE scaling type '", rope_type,
                "' is not supported (plain RoPE only)");
  if (auto p = opt_positive(c, file, "partial_rotary_factor"); p && *p != 1.0)
    throw_error(ErrorKind::Unsupported, file, ": partial_rotary_factor ", *p, " is not supported");

  // Sliding-window attention: cap the context so that it never matters.
  const std::optional<int64_t> window = opt_int(c, file, "sliding_window", 1, int64_t(1) << 40);
  bool sliding = arch == "mistral";
  if (arch == "qwen2")
    sliding = opt_bool(c, file, "use_sliding_window").value_or(false) &&
              opt_int(c, file, "max_window_layers", 0, int64_t(1) << 30).value_or(0) < L;
  if (const json* lt = find(c, "layer_types")) {
    if (!lt->is_array()) throw_error(ErrorKind::Format, file, ": layer_types should be a list");
    sliding = false;
    for (const json& t : *lt) {
      const std::string s = t.is_string() ? t.get<std::string>() : "";
      if (s == "sliding_attention") sliding = true;
      else if (s != "full_attention")
        throw_error(ErrorKind::Unsupported, file, ": layer type ", brief(t), " is not supported");
    }
  }
  if (sliding && window && *window < ctx) ctx = *window;

  tied = opt_bool(c, file, "tie_word_embeddings").value_or(false);  // the three classes' default
  const std::string a = arch + ".";
  kv["general.architecture"] = meta::str(arch);
  kv[a + "vocab_size"] = meta::u32(uint64_t(V));
  kv[a + "embedding_length"] = meta::u32(uint64_t(D));
  kv[a + "feed_forward_length"] = meta::u32(uint64_t(F));
  kv[a + "block_count"] = meta::u32(uint64_t(L));
  kv[a + "attention.head_count"] = meta::u32(uint64_t(H));
  kv[a + "attention.head_count_kv"] = meta::u32(uint64_t(Hkv));
  kv[a + "attention.key_length"] = meta::u32(uint64_t(head_dim));
  kv[a + "attention.value_length"] = meta::u32(uint64_t(head_dim));
  kv[a + "rope.dimension_count"] = meta::u32(uint64_t(head_dim));
  kv[a + "context_length"] = meta::u32(uint64_t(ctx));
  kv[a + "rope.freq_base"] = meta::f32(theta);
  kv[a + "attention.layer_norm_rms_epsilon"] = meta::f32(eps);
  kv["halfbyte.rope_neox"] = meta::boolean(true);
  // Special token ids (tokenizer_config.json, read later, may name others).
  // Special token ids (tokenizer_config.json, read later, may name others); an id
  // outside the vocabulary is ignored. eos_token_id may be a list: the first.
  for (const char* key : {"bos_token_id", "eos_token_id"}) {
    const json* v = find(c, key);
    if (v && v->is_array()) v = v->empty() ? nullptr : &(*v)[0];
    if (!v || v->is_null()) continue;
    const json wrap = {{key, *v}};
    const int64_t id = req_int(wrap, file, key, std::numeric_limits<int64_t>::min(),
                               std::numeric_limits<int64_t>::max());
    if (id >= 0 && id < V)
      kv[std::string("tokenizer.ggml.") + key] = meta::u32(uint64_t(id));
  }
  return arch;
}

// The mapped files of a model and their validated headers (HF name -> tensor),
// checked against the folder's index if it has one.
struct Headers {
  Sources src;
  std::vector<std::unique_ptr<MappedFile>> maps;
  std::map<std::string, Raw> raw;
};

Headers read_headers(Sources src) {
  Headers h{std::move(src), {}, {}};
  for (const std::string& file : h.src.files) {
    h.maps.push_back(std::make_unique<MappedFile>(file));
    read_header(*h.maps.back(), uint32_t(h.maps.size() - 1), h.raw, h.maps);
  }
  for (const auto& [tensor, file] : h.src.index) {
    const auto it = h.raw.find(tensor);
    if (it == h.raw.end() || fs::path(h.maps[it->second.source]->path()).filename().string() != file)
      throw_error(ErrorKind::Format, h.src.index_path, ": weight_map says tensor '", tensor, "' is in ", file,
                  ", which does not hold it");
  }
  return h;
}

}  // namespace

GgufFile open_safetensors_tensors(const std::string& path) {
  Headers h = read_headers(find_sources(path));
  std::vector<GgufTensorInfo> tensors;
  for (const auto& [name, r] : h.raw) {
    if (!r.dt || !r.dt->read) continue;  // an architecture's loader says so if it needs one of them
    // GGUF's shapes: 1 to 4 sizes of at least 1 (a scalar is [1]). A tensor without
    // elements or of more dimensions is left out too (no model weight is either).
    if (r.shape.size() > 4 || std::find(r.shape.begin(), r.shape.end(), 0) != r.shape.end()) continue;
    std::vector<int64_t> ne(r.shape.rbegin(), r.shape.rend());
    if (ne.empty()) ne.push_back(1);
    tensors.push_back(meta::tensor(name, std::move(ne), r.dt->type, r.offset, r.source));
  }
  std::map<std::string, GgufValue> kv;
  kv["general.name"] = meta::str(h.src.dir.filename().string());
  return GgufFile::assemble(path, "safetensors", std::move(h.maps), std::move(kv), std::move(tensors));
}

GgufFile open_safetensors(const std::string& path) {
  Sources sources = find_sources(path);
  const std::string cfg_path = (sources.dir / "config.json").string();
  std::map<std::string, GgufValue> kv;
  bool tied = false;
  const std::string arch = read_config(cfg_path, hfjson::read_file(cfg_path, kMaxConfig), kv, tied);
  Headers h = read_headers(std::move(sources));
  const Sources& src = h.src;
  const int64_t n_layer = int64_t(kv[arch + ".block_count"].as_int("block_count"));
  const int64_t n_vocab = int64_t(kv[arch + ".vocab_size"].as_int("vocab_size"));
  std::vector<std::unique_ptr<MappedFile>>& maps = h.maps;
  const std::map<std::string, Raw>& raw = h.raw;

  std::vector<GgufTensorInfo> tensors;
  for (const auto& [hf, r] : raw) {
    const std::string name = gguf_name(cfg_path, hf, n_layer, tied);
    if (name.empty()) continue;
    const std::string& file = maps[r.source]->path();
    if (!r.dt)
      throw_error(ErrorKind::Format, file, ": tensor '", hf, "' has dtype '", r.dtype,
                  "', which is not a safetensors dtype");
    if (!r.dt->read)
      throw_error(ErrorKind::Unsupported, file, ": tensor '", hf, "' has dtype ", r.dtype,
                  "; halfbyte reads F32, F16 and BF16 safetensors weights");
    if (r.shape.empty() || r.shape.size() > 2)
      throw_error(ErrorKind::Format, file, ": tensor '", hf, "' has ", r.shape.size(),
                  " dimensions; a Llama weight has 1 or 2");
    std::vector<int64_t> ne(r.shape.rbegin(), r.shape.rend());
    tensors.push_back(meta::tensor(name, std::move(ne), r.dt->type, r.offset, r.source));
  }
  auto find = [&](const char* name) -> const GgufTensorInfo* {
    for (const GgufTensorInfo& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  };
  if (!tied && !find("output.weight") && find("token_embd.weight"))
    throw_error(ErrorKind::Format, path,
                ": lm_head.weight is missing and config.json says tie_word_embeddings is false");
  if (const GgufTensorInfo* e = find("token_embd.weight")) {
    if (e->ne.size() != 2 || e->ne[1] != n_vocab)
      throw_error(ErrorKind::Format, path, ": model.embed_tokens.weight should have vocab_size = ", n_vocab,
                  " rows (config.json)");
    kv["general.file_type"] = meta::u32(e->type == GgmlType::F32 ? 0 : e->type == GgmlType::F16 ? 1 : 32);
  }
  kv["general.name"] = meta::str(src.dir.filename().empty() ? src.dir.string() : src.dir.filename().string());

  GgufFile f = GgufFile::assemble(path, "safetensors", std::move(maps), std::move(kv), std::move(tensors));
  std::error_code ec;
  const fs::path tok = src.dir / "tokenizer.json";
  if (fs::exists(tok, ec)) add_hf_tokenizer(f, tok.string());
  return f;
}

}  // namespace halfbyte::io
