// Sequence classification heads: configuration, weights, logits, softmax/sigmoid.
//   BERT:       logits = classifier(tanh(pooler(h[first])))
//   DistilBERT: logits = classifier(relu(pre_classifier(h[first])))
// Dropout is a no-op at inference.
#include "model/encoder_head.hpp"

#include <algorithm>
#include <cmath>

#include "halfbyte/core/error.hpp"
#include "model/bert.hpp"

namespace halfbyte::model {

namespace hj = io::hfjson;
using hj::json;

namespace {

constexpr int64_t kMaxLabels = int64_t(1) << 16;

std::vector<std::string> read_labels(const json& c, const std::string& file) {
  const std::optional<int64_t> num = hj::opt_int(c, file, "num_labels", 1, kMaxLabels);
  const json* id2label = hj::find(c, "id2label");
  if (!id2label) {
    std::vector<std::string> labels(static_cast<size_t>(num.value_or(2)));
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = "LABEL_" + std::to_string(i);
    return labels;
  }
  if (!id2label->is_object() || id2label->empty())
    throw_error(ErrorKind::Format, file, ": id2label should be a non-empty object of label names by id, got ",
                hj::brief(*id2label));
  const int64_t n = int64_t(id2label->size());
  if (n > kMaxLabels) throw_error(ErrorKind::Format, file, ": id2label has ", n, " labels, more than ", kMaxLabels);
  if (num && *num != n)
    throw_error(ErrorKind::Format, file, ": num_labels is ", *num, " but id2label has ", n, " labels");
  std::vector<std::string> labels(static_cast<size_t>(n));
  std::vector<bool> seen(size_t(n), false);
  for (const auto& [key, v] : id2label->items()) {
    int64_t id = -1;
    const bool digits = !key.empty() && key.size() <= 6 && std::all_of(key.begin(), key.end(), [](char ch) {
      return ch >= '0' && ch <= '9';
    });
    if (digits) id = std::stoll(key);
    if (id < 0 || id >= n || seen[size_t(id)] || (key.size() > 1 && key[0] == '0'))
      throw_error(ErrorKind::Format, file, ": id2label key '", key.substr(0, 40), "' is not an id in [0, ", n,
                  ") (ids 0 to ", n - 1, ", each once)");
    if (!v.is_string())
      throw_error(ErrorKind::Format, file, ": id2label['", key, "'] should be a string, got ", hj::brief(v));
    seen[size_t(id)] = true;
    labels[size_t(id)] = v.get<std::string>();
  }
  return labels;
}

}  // namespace

std::string read_head_config(const json& c, const std::string& file, EncoderConfig& e) {
  const EncoderNames& nm = encoder_names(e.arch);
  std::string archs = "(none)";
  bool head = false;
  if (const json* a = hj::find(c, "architectures")) {
    if (!a->is_array()) throw_error(ErrorKind::Format, file, ": architectures should be a list, got ", hj::brief(*a));
    archs = "[";
    for (const json& name : *a) {
      if (!name.is_string())
        throw_error(ErrorKind::Format, file, ": architectures should be a list of strings, got ", hj::brief(name));
      archs += (archs.size() > 1 ? ", " : "") + name.get<std::string>();
      head = head || name.get<std::string>() == nm.head_class;
    }
    archs += "]";
  }
  e.labels.clear();
  if (!head) return archs;
  e.labels = read_labels(c, file);
  const std::optional<std::string> pt = hj::opt_string(c, file, "problem_type");
  if (!pt) e.problem_type = e.labels.size() == 1 ? ProblemType::Regression : ProblemType::SingleLabel;
  else if (*pt == "single_label_classification") e.problem_type = ProblemType::SingleLabel;
  else if (*pt == "multi_label_classification") e.problem_type = ProblemType::MultiLabel;
  else if (*pt == "regression") e.problem_type = ProblemType::Regression;
  else
    throw_error(ErrorKind::Format, file, ": problem_type '", pt->substr(0, 60),
                "' is not one of regression, single_label_classification, multi_label_classification");
  return archs;
}

SequenceHead::SequenceHead(const io::GgufFile& f, const EncoderConfig& c, const std::string& prefix, int n_threads)
    : n_threads_(n_threads) {
  const EncoderNames& nm = encoder_names(c.arch);
  const int64_t D = c.n_embd, L = int64_t(c.labels.size());
  tanh_ = nm.head_tanh;
  auto get = [&](const std::string& name) -> const io::GgufTensorInfo& {
    const io::GgufTensorInfo* t = f.find_tensor(name);
    if (!t)
      throw_error(ErrorKind::Format, f.path(), ": tensor '", name, "' of the ", nm.head_class,
                  " head is missing (or not of dtype F32, F16 or BF16)");
    return *t;
  };
  auto linear = [&](const std::string& name, int64_t n_out) {
    const io::GgufTensorInfo& w = get(name + ".weight");
    if (w.ne.size() != 2 || w.ne[0] != D || w.ne[1] != n_out)
      throw_error(ErrorKind::Format, f.path(), ": tensor '", w.name, "' should have shape [", n_out, ", ", D, "]",
                  name == nm.head_out ? " (one row per label of config.json's id2label / num_labels)" : "",
                  w.ne.size() == 2 ? ", has [" + std::to_string(w.ne[1]) + ", " + std::to_string(w.ne[0]) + "]"
                                   : std::string());
    Linear l = Linear::from_gguf(f, {&w}, D, nullptr);
    l.bias = tensor_vector(f, get(name + ".bias"), n_out);
    return l;
  };
  pre_ = linear((nm.head_pre_prefixed ? prefix : std::string()) + nm.head_pre, D);
  out_ = linear(nm.head_out, L);
}

void SequenceHead::forward(const float* first, int64_t n, float* logits) const {
  const int64_t D = pre_.n_in();
  std::vector<float> p(size_t(n * D));
  pre_.forward(first, n, D, p.data(), D, n_threads_, true);
  for (float& v : p) v = tanh_ ? std::tanh(v) : std::max(v, 0.0f);
  out_.forward(p.data(), n, D, logits, out_.n_out(), n_threads_, true);
}

void apply_score_function(ScoreFunction f, ProblemType p, int64_t n_labels, float* x, int64_t n) {
  if (f == ScoreFunction::Auto)
    f = p == ProblemType::MultiLabel   ? ScoreFunction::Sigmoid
        : p == ProblemType::Regression ? ScoreFunction::None
        : n_labels == 1                ? ScoreFunction::None  // softmax of one logit is 1
                                       : ScoreFunction::Softmax;
  if (f == ScoreFunction::None) return;
  for (int64_t r = 0; r < n; ++r) {
    float* row = x + r * n_labels;
    if (f == ScoreFunction::Sigmoid) {
      for (int64_t i = 0; i < n_labels; ++i) row[i] = float(1.0 / (1.0 + std::exp(-double(row[i]))));
    } else {  // softmax, max subtracted
      const float mx = *std::max_element(row, row + n_labels);
      double sum = 0.0;
      for (int64_t i = 0; i < n_labels; ++i) sum += std::exp(double(row[i]) - mx);
      for (int64_t i = 0; i < n_labels; ++i) row[i] = float(std::exp(double(row[i]) - mx) / sum);
    }
  }
}

}  // namespace halfbyte::model
