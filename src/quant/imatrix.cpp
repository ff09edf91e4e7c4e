// Reading and writing importance matrices (layout: include/halfbyte/quant/imatrix.hpp).
#include "halfbyte/quant/imatrix.hpp"

#include <cmath>
#include <cstring>
#include <string_view>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/io/gguf_writer.hpp"
#include "io/metadata_build.hpp"

namespace halfbyte::quant {

namespace {

constexpr std::string_view kSum2 = ".in_sum2", kCounts = ".counts";

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
  return m;
}

void save_imatrix(const std::string& path, const Imatrix& m) {
  io::GgufWriter w;
  w.set("general.type", io::meta::str("imatrix"));
  w.set("imatrix.chunk_count", io::meta::u32(uint64_t(m.chunk_count)));
  w.set("imatrix.chunk_size", io::meta::u32(uint64_t(m.chunk_size)));
  w.set("imatrix.datasets", io::meta::str_array(m.datasets));
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
