// `halfbyte quantize`: a model in, a quantized GGUF out (see
// include/halfbyte/quant/model_quantize.hpp for what goes where).
//
// Every tensor is read row by row as fp32 through the loader's decoder (any type
// and any input format), encoded, decoded again to measure its error, and kept in
// memory until the file is written in one go by io::GgufWriter (temporary name,
// renamed at the end): a cancelled or failed run leaves no file behind.
#include "halfbyte/quant/model_quantize.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "halfbyte/core/error.hpp"
#include "halfbyte/core/half.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/io/gguf_writer.hpp"
#include "halfbyte/io/model_file.hpp"
#include "halfbyte/quant/ggml_quants.hpp"
#include "halfbyte/quant/imatrix.hpp"
#include "halfbyte/quant/quantize.hpp"
#include "halfbyte/threads.hpp"
#include "io/metadata_build.hpp"
#include "model/linear.hpp"  // tensor_row_to_float: any type the loader reads, as fp32
#include "model/encoder_gguf.hpp"
#include "quant/gptq.hpp"
#include "quant/row_codec.hpp"

namespace halfbyte::quant {
namespace {

using io::GgmlType;

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string check_type(const std::string& type) {
  const std::string t = lower(type);
  for (const auto& k : model_quantize_types())
    if (k == t) return t;
  std::string list;
  for (const auto& k : model_quantize_types()) list += (list.empty() ? "" : ", ") + k;
  throw_invalid("quantize: unknown type '", type, "' (expected one of ", list, ")");
}

// llama.cpp's rule for the layers whose attn_v / ffn_down get more bits in its
// *_M mixes: the first and last eighth, and every third layer in between.
bool more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int64_t layer_of(const std::string& name) {
  if (name.compare(0, 4, "blk.") != 0) return -1;
  int64_t v = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) v = v * 10 + (name[i] - '0');
  return v;
}

GgmlType ggml_type(const std::string& name) {
  static const std::map<std::string, GgmlType> m = {
      {"f32", GgmlType::F32},   {"f16", GgmlType::F16},   {"q8_0", GgmlType::Q8_0}, {"q4_0", GgmlType::Q4_0},
      {"q4_1", GgmlType::Q4_1}, {"q5_0", GgmlType::Q5_0}, {"q5_1", GgmlType::Q5_1}, {"q4_k", GgmlType::Q4_K},
      {"q5_k", GgmlType::Q5_K}, {"q6_k", GgmlType::Q6_K}};
  return m.at(lower(name));
}

// When the row length is not a whole number of blocks (e.g. 576 = 2.25 x 256 in
// SmolLM2-135M), the next type down the chain llama.cpp uses for the same case.
GgmlType fit_type(GgmlType t, int64_t n) {
  for (;;) {
    if (n % io::ggml_type_info(t).block == 0) return t;
    t = t == GgmlType::Q4_K   ? GgmlType::Q5_0
        : t == GgmlType::Q5_K ? GgmlType::Q5_1
        : t == GgmlType::Q6_K ? GgmlType::Q8_0
                              : GgmlType::F16;
  }
}

// general.file_type as llama.cpp numbers it (llama_ftype), informational only.
uint32_t file_type(const std::string& type) {
  static const std::map<std::string, uint32_t> m = {{"f32", 0}, {"f16", 1},   {"q4_0", 2},    {"q4_1", 3}, {"q8_0", 7},
                                                    {"q5_0", 8}, {"q4_k", 14}, {"q4_k_s", 14}, {"q4_k_m", 15},
                                                    {"q6_k", 18}};
  return m.at(type);
}

bool is_quantized(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::F64:
    case GgmlType::I8: case GgmlType::I16: case GgmlType::I32: case GgmlType::I64:
      return false;
    default:
      return true;
  }
}
bool is_integer(GgmlType t) {
  return t == GgmlType::I8 || t == GgmlType::I16 || t == GgmlType::I32 || t == GgmlType::I64;
}

// Row r of the output comes from row src_row(r) of the input: the identity, except
// for Q and K of HF checkpoints, whose rows go from HF's rotary layout (per head:
// the first halves of all pairs, then the second halves) to GGUF's adjacent pairs.
struct RowMap {
  int64_t head_dim = 0;  // 0: identity
  int64_t operator()(int64_t r) const {
    if (head_dim == 0) return r;
    const int64_t h = r / head_dim, k = r % head_dim, half = head_dim / 2;
    return h * head_dim + (k % 2) * half + k / 2;
  }
};

// The importance of each column, from the imatrix, with a floor so that columns no
// calibration token reached still count a little (the fit stays defined).
std::vector<float> importance_for(const Imatrix* im, const std::string& name, int64_t n, const std::string& path,
                                  int& missing) {
  if (!im) return {};
  const auto it = im->entries.find(name);
  if (it == im->entries.end()) {
    ++missing;
    return {};
  }
  std::vector<float> w = it->second.importance();
  if (int64_t(w.size()) != n)
    throw_error(ErrorKind::Format, path, ": imatrix entry '", name, "' has ", w.size(), " columns, the tensor ", n);
  double mean = 0;
  for (float v : w) mean += v;
  mean /= double(n);
  if (!(mean > 0)) return {};
  for (float& v : w) v += float(1e-3 * mean);
  return w;
}

}  // namespace

const std::vector<std::string>& model_quantize_types() {
  static const std::vector<std::string> t = {"f32", "f16",  "q8_0",   "q4_0",  "q4_1",
                                             "q5_0", "q4_k", "q6_k", "q4_k_s", "q4_k_m"};
  return t;
}

std::string mix_type(const std::string& type, const std::string& name, int64_t n_layer, bool tied, bool pure) {
  const std::string t = check_type(type);
  const int64_t l = layer_of(name);
  if (t == "q4_k_s") {  // llama.cpp's Q4_K_S rules
    if (name == "output.weight" || (tied && name == "token_embd.weight")) return "q6_K";
    if (l >= 0 && ends_with(name, ".attn_v.weight") && l < 4) return "q5_K";
    if (l >= 0 && ends_with(name, ".ffn_down.weight") && l < n_layer / 8) return "q5_K";
    return "q4_K";
  }
  if (t != "q4_k_m") {
    // The output head decides every next token: llama.cpp keeps it at q6_K under
    // the 4- and 5-bit types (4-bit heads wreck small models: SmolLM2-135M at pure
    // q4_0 repeats "111.111...").
    const bool head = name == "output.weight" || (tied && name == "token_embd.weight");
    const bool low = t == "q4_0" || t == "q4_1" || t == "q5_0" || t == "q4_k";
    if (head && low && !pure) return "q6_K";
    return io::ggml_type_info(ggml_type(t)).name;
  }
  if (name == "token_embd.weight" || name == "output.weight") return "q6_K";
  if (l >= 0 && (ends_with(name, ".attn_v.weight") || ends_with(name, ".ffn_down.weight")) && more_bits(l, n_layer))
    return "q6_K";
  return "q4_K";
}

std::vector<TensorQuantInfo> quantize_model(const std::string& in, const std::string& out,
                                            const ModelQuantizeOptions& opts) {
  const std::string type = check_type(opts.type);
  if (out.empty()) throw_invalid("quantize: the output path is empty");
  {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(out).parent_path();
    std::error_code ec;
    if (!dir.empty() && !fs::is_directory(dir, ec))
      throw_error(ErrorKind::Io, "quantize: cannot write ", out, ": folder '", dir.string(),
                  "' does not exist (No such file or directory)");
    if (fs::is_directory(out, ec)) throw_invalid("quantize: the output path '", out, "' is a folder");
  }
  const int n_threads = opts.n_threads > 0 ? std::min(opts.n_threads, kMaxThreads) : num_threads();
  // A BERT folder is written in llama.cpp's bert layout (model/encoder_gguf.cpp).
  const bool encoder = model::is_encoder_folder(in);
  if (encoder && !opts.tokenizer.empty())
    throw_invalid("quantize: ", in, " is a BERT folder; its own tokenizer is written (no --tokenizer)");
  io::GgufFile f = encoder ? model::bert_folder_as_gguf(in) : io::open_model_file(in, opts.tokenizer);
  std::unique_ptr<Imatrix> im;
  if (!opts.imatrix.empty()) im = std::make_unique<Imatrix>(load_imatrix(opts.imatrix));

  const std::string arch = f.get_string("general.architecture", "");
  const int64_t n_layer = f.get_int(arch + ".block_count", 0);
  // BERT has no output head: its token embeddings are a table only.
  const bool tied = f.find_tensor("output.weight") == nullptr && arch != "bert";
  // HF checkpoints: Q/K rows in HF's rotary layout. llama.cpp expects GGUF's for
  // llama-style models (qwen2 uses HF's layout natively): permute, drop the flag.
  bool permute_qk = false;
  int64_t n_head = 0, n_head_kv = 0;
  if (f.has("halfbyte.rope_neox")) {
    permute_qk = f.get("halfbyte.rope_neox").as_bool("halfbyte.rope_neox") && arch != "qwen2";
    n_head = f.get_int(arch + ".attention.head_count", 0);
    n_head_kv = f.get_int(arch + ".attention.head_count_kv", n_head);
    if (permute_qk && (n_head <= 0 || n_head_kv <= 0))
      throw_error(ErrorKind::Format, in, ": head counts are needed to reorder Q and K rows for GGUF");
  }

  struct Job {
    const io::GgufTensorInfo* t;
    GgmlType to;
    bool copy;  // bytes copied unchanged
    RowMap map;
  };
  std::vector<Job> jobs;
  std::vector<std::string> requantized;
  for (const auto& t : f.tensors()) {
    Job j{&t, GgmlType::F32, false, {}};
    // BERT's position and token type tables stay float, as llama.cpp keeps them.
    const bool matrix = t.ne.size() == 2 && ends_with(t.name, ".weight") && !is_integer(t.type) &&
                        t.name != "position_embd.weight" && t.name != "token_types.weight";
    if (is_integer(t.type)) {
      j.to = t.type;
      j.copy = true;
    } else if (matrix) {
      j.to = type == "f32" ? GgmlType::F32 : fit_type(ggml_type(mix_type(type, t.name, n_layer, tied, opts.pure)), t.ne[0]);
    } else {
      j.to = GgmlType::F32;  // norms, biases, anything else: f32 (llama.cpp's choice too)
    }
    if (permute_qk && (ends_with(t.name, ".attn_q.weight") || ends_with(t.name, ".attn_k.weight") ||
                       ends_with(t.name, ".attn_q.bias") || ends_with(t.name, ".attn_k.bias"))) {
      const int64_t heads = ends_with(t.name, "q.weight") || ends_with(t.name, "q.bias") ? n_head : n_head_kv;
      const int64_t rows = t.ne.size() == 1 ? 1 : t.numel() / t.ne[0];
      if (t.ne.size() == 2 && rows % heads == 0 && (rows / heads) % 2 == 0) j.map.head_dim = rows / heads;
      else if (t.ne.size() != 1)
        throw_error(ErrorKind::Format, in, ": tensor '", t.name, "' rows do not split into ", heads, " heads");
      // A bias vector would be permuted per element; llama checkpoints have none.
      if (t.ne.size() == 1) throw_error(ErrorKind::Unsupported, in, ": '", t.name, "' with HF rotary layout");
    }
    if (!j.copy && j.to == t.type && j.map.head_dim == 0) j.copy = true;
    if (!j.copy && is_quantized(t.type)) requantized.push_back(t.name + " (" + io::ggml_type_info(t.type).name + ")");
    jobs.push_back(j);
  }
  if (!requantized.empty() && opts.warn) {
    std::string list;
    for (size_t k = 0; k < requantized.size() && k < 4; ++k) list += (k ? ", " : "") + requantized[k];
    if (requantized.size() > 4) list += ", ...";
    opts.warn(in + ": " + std::to_string(requantized.size()) +
              " tensors are stored quantized already and are dequantized before quantizing again, which adds "
              "their error to the new one: " + list);
  }

  std::vector<TensorQuantInfo> table;
  std::vector<std::vector<uint8_t>> data(jobs.size());
  int imatrix_missing = 0, gptq_count = 0;
  // GPTQ where the imatrix has the matrix's input covariance; not for a token table
  // that is also the output head (its rows are embeddings too).
  const auto gptq_entry = [&](const Job& j) -> const ImatrixEntry* {
    const io::GgufTensorInfo& t = *j.t;
    if (j.copy || !im || !opts.gptq || t.ne.size() != 2 || !has_element_grid(j.to)) return nullptr;
    if (tied && t.name == "token_embd.weight") return nullptr;
    const auto it = im->entries.find(t.name);
    return it != im->entries.end() && it->second.cov ? &it->second : nullptr;
  };
  std::map<const std::vector<float>*, std::shared_ptr<const GptqFactor>> factors;
  std::map<const std::vector<float>*, int> factor_users;
  for (const Job& j : jobs)
    if (const ImatrixEntry* e = gptq_entry(j)) ++factor_users[e->cov.get()];
  for (size_t k = 0; k < jobs.size(); ++k) {
    const Job& j = jobs[k];
    const io::GgufTensorInfo& t = *j.t;
    TensorQuantInfo info;
    info.name = t.name;
    info.source_type = io::ggml_type_info(t.type).name;
    info.type = io::ggml_type_info(j.to).name;
    info.shape = t.ne;
    const auto cancelled = [&] { return opts.progress && !opts.progress(k, jobs.size(), t.name, 1.0f) ? true : false; };
    if (j.copy) {
      data[k].assign(f.data(t), f.data(t) + t.nbytes);
      f.release_pages(t);
      info.bytes = t.nbytes;
      table.push_back(info);
      if (cancelled()) throw_error(ErrorKind::Runtime, out, ": quantize cancelled");
      continue;
    }
    const int64_t n = t.ne[0], rows = t.numel() / n;
    const auto& ti = io::ggml_type_info(j.to);
    const size_t rb = size_t(n / ti.block) * size_t(ti.block_bytes);
    data[k].resize(rb * size_t(rows));
    const bool matrix = t.ne.size() == 2 && j.to != GgmlType::F32;
    const std::vector<float> w = matrix ? importance_for(im.get(), t.name, n, opts.imatrix, imatrix_missing)
                                        : std::vector<float>{};
    std::shared_ptr<const GptqFactor> gptq;
    if (const ImatrixEntry* e = gptq_entry(j)) {
      if (int64_t(e->sum2.size()) != n)
        throw_error(ErrorKind::Format, opts.imatrix, ": imatrix entry '", t.name, "' has ", e->sum2.size(),
                    " columns, the tensor ", n);
      // One factor per distinct input (Q, K and V share theirs), kept until its last user.
      auto& cached = factors[e->cov.get()];
      // Statistics GPTQ cannot use (no activation reached the matrix, or H stays
      // singular): importance only, said so.
      try {
        if (!cached) cached = std::make_shared<const GptqFactor>(gptq_factor(e->cov->data(), n));
        gptq = cached;
        ++gptq_count;
      } catch (const Error& err) {
        if (opts.warn) opts.warn(opts.imatrix + ": '" + t.name + "' is quantized without GPTQ: " + err.what());
      }
      if (--factor_users[e->cov.get()] == 0) factors.erase(e->cov.get());
    }
    double err2 = 0.0, sum2 = 0.0;
    // Rows in chunks so progress (and Ctrl-C through it) is reported on this thread;
    // within a chunk, groups of rows per task (GPTQ runs a group as matrices).
    const int64_t group = gptq ? 16 : 1;
    const int64_t chunk = std::max<int64_t>(group * (gptq ? 4 * n_threads : 1),
                                            std::min<int64_t>(rows / 50 + 1, 4096 * 1024 / std::max<int64_t>(n, 1)));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t r1 = std::min(rows, r0 + chunk);
      const int64_t n_groups = (r1 - r0 + group - 1) / group;
      std::string failure;
#pragma omp parallel num_threads(n_threads) reduction(+ : err2, sum2)
      {
        std::vector<float> x(size_t(group * n), 0.0f), x0, y(size_t(n), 0.0f);
        if (gptq) x0.resize(x.size());
#pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < n_groups; ++g) {
          const int64_t ra = r0 + g * group, rb_end = std::min(r1, ra + group);
          try {
            for (int64_t r = ra; r < rb_end; ++r) model::tensor_row_to_float(f, t, j.map(r), x.data() + (r - ra) * n);
            uint8_t* dst = data[k].data() + size_t(ra) * rb;
            if (gptq) {
              std::copy(x.begin(), x.end(), x0.begin());
              gptq_rows(j.to, *gptq, x.data(), rb_end - ra, w.empty() ? nullptr : w.data(), dst, rb);
            } else {
              encode_row(j.to, x.data(), n, w.empty() ? nullptr : w.data(), dst);
            }
            const std::vector<float>& orig = gptq ? x0 : x;
            for (int64_t r = ra; r < rb_end; ++r) {
              decode_row(j.to, data[k].data() + size_t(r) * rb, n, y.data());
              const float* xr = orig.data() + (r - ra) * n;
              for (int64_t i = 0; i < n; ++i) {
                const double e = double(xr[i]) - y[size_t(i)];
                err2 += e * e;
                sum2 += double(xr[i]) * xr[i];
              }
            }
          } catch (const std::exception& e) {
#pragma omp critical(halfbyte_model_quantize_error)
            if (failure.empty())
              failure = std::string(e.what()) + " (tensor '" + t.name + "', row " + std::to_string(ra) +
                        (rb_end - ra > 1 ? " to " + std::to_string(rb_end - 1) : std::string()) + ")";
          }
        }
      }
      if (!failure.empty()) throw_error(ErrorKind::InvalidArgument, in, ": ", failure);
      if (opts.progress && !opts.progress(k, jobs.size(), t.name, float(r1) / float(rows)))
        throw_error(ErrorKind::Runtime, out, ": quantize cancelled");
    }
    f.release_pages(t);
    info.bytes = data[k].size();
    info.rel_rms_error = sum2 > 0 ? std::sqrt(err2 / sum2) : std::sqrt(err2);
    table.push_back(info);
  }
  if (im && imatrix_missing > 0 && opts.warn)
    opts.warn(opts.imatrix + ": no entry for " + std::to_string(imatrix_missing) +
              " quantized weight matrices; they are quantized unweighted");

  if (im && opts.gptq && im->covariance && gptq_count == 0 && opts.warn)
    opts.warn(opts.imatrix + ": it has covariances, but for none of the quantized matrices; GPTQ not used");

  io::GgufWriter wr;
  for (const auto& [key, v] : f.metadata()) {
    // Resolved above (Q/K rows permuted), or qwen2's default anyway.
    if (key == "halfbyte.rope_neox" && (permute_qk || arch == "qwen2")) continue;
    wr.set(key, v);
  }
  wr.set("general.file_type", io::meta::u32(file_type(type)));
  wr.set("general.quantization_version", io::meta::u32(2));  // ggml's current k-quant layout
  for (size_t k = 0; k < jobs.size(); ++k)
    wr.add_tensor(jobs[k].t->name, jobs[k].t->ne, jobs[k].to, data[k].data(), data[k].size());
  wr.write(out);
  return table;
}

}  // namespace halfbyte::quant
