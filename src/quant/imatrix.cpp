// Reading and writing importance matrices (layout: include/halfbyte/quant/imatrix.hpp).
#include "halfbyte/quant/imatrix.hpp"

#include <Eigen/Core>
#include <cmath>
#include <cstring>
#include <map>
#include <string_view>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/io/gguf_writer.hpp"
#include "io/metadata_build.hpp"

namespace halfbyte::quant {

namespace {

constexpr std::string_view kSum2 = ".in_sum2", kCounts = ".counts", kCov = ".in_cov";
constexpr const char* kCovShared = "halfbyte.imatrix.cov_shared";

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<float> f32_values(const io::GgufFile& f, const io::GgufTensorInfo& t) {
  if (t.type != io::GgmlType::F32)
    throw_error(ErrorKind::Format, f.path(), ": imatrix tensor '", t.name, "' should be f32, is ",
                io::ggml_type_info(t.type).name);
  std::vector<float> v(size_t(t.numel()));
  std::memcpy(v.data(), f.data(t), v.size() * sizeof(float));
  return v;
}

}  // namespace

std::vector<float> ImatrixEntry::importance() const {
  std::vector<float> out(sum2.size(), 0.0f);
  if (count > 0)
    for (size_t j = 0; j < sum2.size(); ++j) out[j] = float(sum2[j] / count);
  return out;
}

void accumulate(ImatrixEntry& e, const std::string& name, const float* x, int64_t n, int64_t ld, int64_t cols,
                bool covariance) {
  if (e.sum2.empty()) e.sum2.assign(size_t(cols), 0.0);
  if (int64_t(e.sum2.size()) != cols)
    throw_invalid("imatrix: '", name, "' has ", e.sum2.size(), " columns in the statistics, the model ", cols);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < cols; ++j) e.sum2[size_t(j)] += double(x[t * ld + j]) * double(x[t * ld + j]);
  e.count += double(n);
  if (!covariance || n == 0) return;
  if (!e.cov) e.cov = std::make_shared<std::vector<float>>(size_t(cols * cols), 0.0f);
  // X^T X, X the n x cols activations (a full product: simpler than a symmetric
  // update plus mirroring, and small beside the forward pass).
  using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMatF, 0, Eigen::OuterStride<>> X(x, n, cols, Eigen::OuterStride<>(ld));
  Eigen::Map<RowMatF> C(e.cov->data(), cols, cols);
  C.noalias() += X.transpose() * X;
}

Imatrix load_imatrix(const std::string& path) {
  const io::GgufFile f = io::GgufFile::open(path);
  const std::string type = f.get_string("general.type", "");
  if (type != "imatrix")
    throw_error(ErrorKind::Format, path, ": not an importance matrix (general.type is '", type,
                "', expected 'imatrix'; files from llama.cpp's legacy .dat format are not read)");
  Imatrix m;
  m.chunk_count = f.get_int("imatrix.chunk_count", 0);
  m.chunk_size = f.get_int("imatrix.chunk_size", 0);
  if (f.has("imatrix.datasets"))
    for (const auto& v : f.get("imatrix.datasets").as_array("imatrix.datasets").items)
      m.datasets.push_back(v.as_string("imatrix.datasets"));
  for (const auto& t : f.tensors()) {
    if (!ends_with(t.name, kSum2)) continue;
    const std::string w = t.name.substr(0, t.name.size() - kSum2.size());
    const io::GgufTensorInfo* c = f.find_tensor(w + std::string(kCounts));
    if (!c) throw_error(ErrorKind::Format, path, ": imatrix tensor '", t.name, "' has no '", w, kCounts, "'");
    const std::vector<float> sum2 = f32_values(f, t), counts = f32_values(f, *c);
    // llama.cpp stores [n_in, n_mat] (n_mat > 1 for stacked experts); halfbyte's
    // models have one matrix per tensor.
    if (counts.size() != 1 || (t.ne.size() > 1 && t.ne[1] != 1))
      throw_error(ErrorKind::Unsupported, path, ": imatrix tensor '", t.name,
                  "' holds several matrices (mixture of experts); not supported");
    ImatrixEntry e;
    e.sum2.assign(sum2.begin(), sum2.end());
    e.count = counts[0];
    for (double v : e.sum2)
      if (!(v >= 0.0) || !std::isfinite(v))
        throw_error(ErrorKind::Format, path, ": imatrix tensor '", t.name, "' has a negative or non-finite value");
    if (!(e.count >= 0.0)) throw_error(ErrorKind::Format, path, ": imatrix tensor '", c->name, "' is negative");
    m.entries[w] = std::move(e);
  }
  if (m.entries.empty()) throw_error(ErrorKind::Format, path, ": the imatrix file holds no '*.in_sum2' tensors");
  // Second moments for GPTQ, if the file has them.
  for (const auto& t : f.tensors()) {
    if (!ends_with(t.name, kCov)) continue;
    const std::string w = t.name.substr(0, t.name.size() - kCov.size());
    const auto it = m.entries.find(w);
    if (it == m.entries.end())
      throw_error(ErrorKind::Format, path, ": imatrix tensor '", t.name, "' has no '", w, kSum2, "'");
    const int64_t n = int64_t(it->second.sum2.size());
    if (t.ne.size() != 2 || t.ne[0] != n || t.ne[1] != n)
      throw_error(ErrorKind::Format, path, ": imatrix tensor '", t.name, "' should be ", n, " x ", n, " (the columns of '",
                  w, kSum2, "')");
    auto cov = std::make_shared<std::vector<float>>(f32_values(f, t));
    for (float v : *cov)
      if (!std::isfinite(v)) throw_error(ErrorKind::Format, path, ": imatrix tensor '", t.name, "' has a non-finite value");
    for (int64_t j = 0; j < n; ++j)
      if ((*cov)[size_t(j * n + j)] < 0.0f)
        throw_error(ErrorKind::Format, path, ": imatrix tensor '", t.name, "' has a negative diagonal");
    it->second.cov = std::move(cov);
    m.covariance = true;
  }
  if (f.has(kCovShared)) {
    std::vector<std::string> pairs;
    for (const auto& v : f.get(kCovShared).as_array(kCovShared).items) pairs.push_back(v.as_string(kCovShared));
    if (pairs.size() % 2 != 0) throw_error(ErrorKind::Format, path, ": ", kCovShared, " should hold pairs of names");
    for (size_t i = 0; i < pairs.size(); i += 2) {
      const auto to = m.entries.find(pairs[i]), from = m.entries.find(pairs[i + 1]);
      if (to == m.entries.end() || from == m.entries.end() || !from->second.cov)
        throw_error(ErrorKind::Format, path, ": ", kCovShared, " names '", pairs[i], "' and '", pairs[i + 1],
                    "', which are not both in the file with a covariance for the second");
      if (to->second.sum2.size() != from->second.sum2.size())
        throw_error(ErrorKind::Format, path, ": ", kCovShared, ": '", pairs[i], "' and '", pairs[i + 1],
                    "' have different column counts");
      to->second.cov = from->second.cov;
    }
  }
  return m;
}

void save_imatrix(const std::string& path, const Imatrix& m) {
  io::GgufWriter w;
  w.set("general.type", io::meta::str("imatrix"));
  w.set("imatrix.chunk_count", io::meta::u32(uint64_t(m.chunk_count)));
  w.set("imatrix.chunk_size", io::meta::u32(uint64_t(m.chunk_size)));
  w.set("imatrix.datasets", io::meta::str_array(m.datasets));
  // Second moments: each shared matrix once, under the first name that uses it.
  std::map<const std::vector<float>*, std::string> stored;
  std::vector<std::string> shared;
  for (const auto& [name, e] : m.entries) {
    if (!e.cov) continue;
    const size_t n = e.sum2.size();
    if (e.cov->size() != n * n)
      throw_invalid("save_imatrix: entry '", name, "' has a covariance of ", e.cov->size(), " values for ", n,
                    " columns");
    const auto [it, fresh] = stored.emplace(e.cov.get(), name);
    if (!fresh) {
      shared.push_back(name);
      shared.push_back(it->second);
      continue;
    }
    w.add_tensor(name + std::string(kCov), {int64_t(n), int64_t(n)}, io::GgmlType::F32, e.cov->data(),
                 e.cov->size() * sizeof(float));
  }
  if (!shared.empty()) w.set(kCovShared, io::meta::str_array(shared));
  // The writer keeps pointers: the float copies live until write() returns.
  std::vector<std::vector<float>> keep;
  keep.reserve(2 * m.entries.size());
  for (const auto& [name, e] : m.entries) {
    if (e.sum2.empty()) throw_invalid("save_imatrix: entry '", name, "' has no columns");
    keep.emplace_back(e.sum2.begin(), e.sum2.end());
    w.add_tensor(name + std::string(kSum2), {int64_t(e.sum2.size()), 1}, io::GgmlType::F32, keep.back().data(),
                 keep.back().size() * sizeof(float));
    keep.push_back({float(e.count)});
    w.add_tensor(name + std::string(kCounts), {1, 1}, io::GgmlType::F32, keep.back().data(), sizeof(float));
  }
  w.write(path);
}

}  // namespace halfbyte::quant
