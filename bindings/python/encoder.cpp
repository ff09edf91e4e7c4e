// Python bindings of halfbyte::model::Encoder: load, embed, tokenize, classify, score.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "halfbyte/halfbyte.hpp"
#include "halfbyte/model/encoder.hpp"

namespace py = pybind11;
using halfbyte::model::Encoder;
using halfbyte_py::PyProgress;

namespace {

// The Python object. embed() and tokenize() are const and thread-safe in C++, so
// calls from several Python threads run in parallel; each holds a reference to the
// encoder, so close() frees the memory once the running calls are done.
class PyEncoder {
 public:
  PyEncoder(const py::object& path, const std::string& dtype, std::optional<int> n_threads,
            std::optional<int64_t> max_length, const std::string& precision) {
    const std::string file = py::str(py::module_::import("os").attr("fsdecode")(
                                         py::module_::import("os").attr("fspath")(path)))
                                 .cast<std::string>();
    halfbyte::model::EncoderOptions o;
    if (dtype.empty()) throw py::value_error("Encoder: dtype must be 'f32' or a format name such as 'q8_0', got ''");
    o.dtype = dtype;
    if (n_threads) {
      if (*n_threads < 1) throw py::value_error("Encoder: n_threads must be >= 1, got " + std::to_string(*n_threads));
      o.n_threads = *n_threads;
    }
    if (max_length) {
      if (*max_length < 2) throw py::value_error("Encoder: max_length must be >= 2, got " + std::to_string(*max_length));
      o.max_length = *max_length;
    }
    using halfbyte::model::MatmulPrecision;
    if (precision == "auto") o.precision = MatmulPrecision::Auto;
    else if (precision == "int") o.precision = MatmulPrecision::Int;
    else if (precision == "float") o.precision = MatmulPrecision::Float;
    else throw py::value_error("Encoder: precision must be 'auto', 'int' or 'float', got '" + precision + "'");
    py::gil_scoped_release nogil;
    enc_ = std::shared_ptr<Encoder>(Encoder::load(file, o).release());
  }

  std::shared_ptr<const Encoder> get() const {
    if (!enc_) throw py::value_error("Encoder: the encoder is closed");
    return enc_;
  }
  void close() { enc_.reset(); }

 private:
  std::shared_ptr<Encoder> enc_;
};

std::vector<std::string> text_list(const py::handle& texts, const char* where) {
  if (py::isinstance<py::str>(texts) || py::isinstance<py::bytes>(texts))
    throw py::type_error(std::string(where) + ": texts must be a list of str, got a single " +
                         py::str(py::type::of(texts)).cast<std::string>() + " (wrap it in a list)");
  std::vector<std::string> out;
  for (const py::handle& t : py::iter(texts)) {
    if (!py::isinstance<py::str>(t))
      throw py::type_error(std::string(where) + ": texts must be str, got " +
                           py::str(py::type::of(t)).cast<std::string>());
    out.push_back(t.cast<std::string>());
  }
  return out;
}

// progress=: None/False, True (halfbyte._progress's bar: tqdm or a stderr line; its
// close() is due after the call) or a callable f(done, total).
py::object embed_progress(const py::object& progress, py::object& bar) {
  if (progress.is_none() || progress.is(py::bool_(false))) return py::none();
  if (progress.is(py::bool_(true))) {
    bar = py::module_::import("halfbyte._progress").attr("_Bar")("embedding");
    return bar;
  }
  if (!PyCallable_Check(progress.ptr()))
    throw py::value_error("Encoder.embed: progress must be None, True or a callable f(done, total) -> bool, got " +
                          py::str(py::type::of(progress)).cast<std::string>());
  return progress;
}

py::array_t<float> embed(const PyEncoder& self, const py::object& texts, int batch_size,
                         std::optional<bool> normalize, const py::object& progress) {
  const std::vector<std::string> list = text_list(texts, "Encoder.embed");
  if (batch_size < 1) throw py::value_error("Encoder.embed: batch_size must be >= 1, got " + std::to_string(batch_size));
  py::object bar = py::none();  // not a null handle: is_none() is false on one
  const py::object cb = embed_progress(progress, bar);
  const auto enc = self.get();
  const int64_t dim = enc->dim();
  // PyProgress (model.cpp's bridge) runs the signal handlers (Ctrl-C) and calls
  // `adapter`, which hands the count of texts done to the callable, or the
  // fraction to the bar; it keeps the callable's exception for rethrow_if_failed().
  int64_t done = 0;  // written and read on this thread only (PyProgress::call is synchronous)
  const int64_t total = int64_t(list.size());
  py::object adapter = py::none();
  if (!bar.is_none())
    adapter = py::cpp_function([bar, &done, total](float) { return bar(double(done) / double(total)); });
  else if (!cb.is_none())
    adapter = py::cpp_function([cb, &done, total](float) { return cb(done, total); });
  std::vector<float> out;
  {
    PyProgress report(adapter);
    try {
      py::gil_scoped_release nogil;
      out = enc->embed(list, normalize ? int(*normalize) : -1, batch_size, [&](int64_t d, int64_t) {
        done = d;
        return report.call(0.0f);
      });
    } catch (const halfbyte::Error&) {
      if (!bar.is_none()) bar.attr("close")();
      report.rethrow_if_failed();  // KeyboardInterrupt or the callable's exception
      throw;
    } catch (...) {
      if (!bar.is_none()) bar.attr("close")();
      throw;
    }
  }
  if (!bar.is_none()) bar.attr("close")();
  py::array_t<float> a({py::ssize_t(list.size()), py::ssize_t(dim)});
  if (!out.empty()) std::memcpy(a.mutable_data(), out.data(), out.size() * sizeof(float));
  return a;
}

// Texts or (text, text_pair) pairs, as given (tokenized later without the GIL).
struct Item {
  std::string a, b;
  bool pair = false;
};

std::vector<Item> item_list(const py::handle& texts, const char* where) {
  const char* want = ": texts must be a list of str or of (str, str) pairs";
  if (py::isinstance<py::str>(texts) || py::isinstance<py::bytes>(texts))
    throw py::type_error(std::string(where) + want + ", got a single " +
                         py::str(py::type::of(texts)).cast<std::string>() + " (wrap it in a list)");
  std::vector<Item> out;
  for (const py::handle& t : py::iter(texts)) {
    Item it;
    if (py::isinstance<py::str>(t)) {
      it.a = t.cast<std::string>();
    } else if ((py::isinstance<py::tuple>(t) || py::isinstance<py::list>(t)) && py::len(t) == 2 &&
               py::isinstance<py::str>(t[py::int_(0)]) && py::isinstance<py::str>(t[py::int_(1)])) {
      it.a = t[py::int_(0)].cast<std::string>();
      it.b = t[py::int_(1)].cast<std::string>();
      it.pair = true;
    } else {
      throw py::type_error(std::string(where) + want + "; got an item of type " +
                           py::str(py::type::of(t)).cast<std::string>());
    }
    out.push_back(std::move(it));
  }
  return out;
}

// Logits (f: None) or scores of the items, [n, n_labels] row-major.
std::vector<float> run_items(const Encoder& enc, const std::vector<Item>& items, int batch_size,
                             std::optional<halfbyte::model::ScoreFunction> f) {
  py::gil_scoped_release nogil;
  std::vector<halfbyte::model::Encoding> seqs;
  if (enc.n_labels() > 0)  // else logits() raises the no-head error
    for (const Item& it : items) seqs.push_back(it.pair ? enc.tokenize_pair(it.a, it.b) : enc.tokenize(it.a));
  return f ? enc.classify(seqs, *f, batch_size) : enc.logits(seqs, batch_size);
}

void check_batch_size(int batch_size, const char* where) {
  if (batch_size < 1)
    throw py::value_error(std::string(where) + ": batch_size must be >= 1, got " + std::to_string(batch_size));
}

py::array_t<float> logits(const PyEncoder& self, const py::object& texts, int batch_size) {
  const std::vector<Item> items = item_list(texts, "Encoder.logits");
  check_batch_size(batch_size, "Encoder.logits");
  const auto enc = self.get();
  const std::vector<float> out = run_items(*enc, items, batch_size, std::nullopt);
  py::array_t<float> a({py::ssize_t(items.size()), py::ssize_t(enc->n_labels())});
  if (!out.empty()) std::memcpy(a.mutable_data(), out.data(), out.size() * sizeof(float));
  return a;
}

py::list classify(const PyEncoder& self, const py::object& texts, std::optional<int> top_k,
                  std::optional<std::string> function, int batch_size) {
  using halfbyte::model::ScoreFunction;
  const std::vector<Item> items = item_list(texts, "Encoder.classify");
  check_batch_size(batch_size, "Encoder.classify");
  if (top_k && *top_k < 1)
    throw py::value_error("Encoder.classify: top_k must be >= 1 or None (every label), got " + std::to_string(*top_k));
  ScoreFunction f = ScoreFunction::Auto;
  if (function) {
    if (*function == "softmax") f = ScoreFunction::Softmax;
    else if (*function == "sigmoid") f = ScoreFunction::Sigmoid;
    else if (*function == "none") f = ScoreFunction::None;
    else
      throw py::value_error("Encoder.classify: function_to_apply must be None, 'softmax', 'sigmoid' or 'none', got '" +
                            *function + "'");
  }
  const auto enc = self.get();
  const std::vector<float> p = run_items(*enc, items, batch_size, f);
  const std::vector<std::string>& labels = enc->labels();
  const size_t L = labels.size(), k = top_k ? std::min(size_t(*top_k), L) : L;
  py::list out;
  std::vector<size_t> order(L);
  for (size_t i = 0; i < items.size(); ++i) {
    const float* row = p.data() + i * L;
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return row[a] > row[b]; });
    py::list best;
    for (size_t j = 0; j < k; ++j) {
      py::dict d;
      d["label"] = labels[order[j]];
      d["score"] = double(row[order[j]]);
      best.append(d);
    }
    out.append(best);
  }
  return out;
}

py::array_t<float> score(const PyEncoder& self, const std::string& query, const py::object& passages, bool sigmoid,
                         int batch_size) {
  const std::vector<std::string> list = text_list(passages, "Encoder.score");
  check_batch_size(batch_size, "Encoder.score");
  const auto enc = self.get();
  std::vector<float> out;
  {
    py::gil_scoped_release nogil;
    out = enc->score(query, list, sigmoid, batch_size);
  }
  py::array_t<float> a(py::ssize_t(list.size()));
  if (!out.empty()) std::memcpy(a.mutable_data(), out.data(), out.size() * sizeof(float));
  return a;
}

const char* kLogitsDoc = R"doc(Raw logits of the classification head.

Args:
    texts: list of str, or of (text, text_pair) tuples (sentence pairs:
        [CLS] text [SEP] text_pair [SEP] with token types 0 then 1), or both mixed.
    batch_size: texts per packed forward pass.

Returns:
    float32 array [len(texts), len(labels)], columns in the order of labels.

Raises RuntimeError if the model has no *ForSequenceClassification head.)doc";

const char* kClassifyDoc = R"doc(Labels with scores, as transformers' text-classification pipeline.

Args:
    texts: list of str, or of (text, text_pair) tuples, or both mixed.
    top_k: labels per text, best first (default 1); None: every label.
    function_to_apply: None (the model's: softmax for single-label
        classification, sigmoid for problem_type "multi_label_classification",
        the raw logit for "regression" and one-label heads), "softmax",
        "sigmoid" or "none".
    batch_size: texts per packed forward pass.

Returns:
    for each text a list of {"label": str, "score": float}, best first,
    e.g. [[{"label": "POSITIVE", "score": 0.9998}]].

Raises RuntimeError if the model has no *ForSequenceClassification head.)doc";

const char* kScoreDoc = R"doc(Cross-encoder relevance of each passage to the query.

Args:
    query: str.
    passages: list of str; each runs as the pair [CLS] query [SEP] passage [SEP].
    sigmoid: False (default): the one-label head's raw logit; True: squashed to (0, 1).
    batch_size: pairs per packed forward pass.

Returns:
    float32 array [len(passages)]; higher is more relevant.

Raises RuntimeError if the model has no head or more than one label.)doc";

const char* kEncoderDoc = R"doc(A BERT-family text encoder (BERT, MiniLM, bge, e5, DistilBERT): sentence
embeddings, and with a *ForSequenceClassification head classification and
cross-encoder scores.

Args:
    path: a Hugging Face model folder (or its model.safetensors): config.json
        (model_type "bert" or "distilbert"), model.safetensors (F32, F16 or BF16), tokenizer.json
        or vocab.txt, and sentence-transformers' 1_Pooling/config.json and
        modules.json if present (mean or CLS pooling; L2 normalization when there
        is a Normalize module).
    dtype: "f32" keeps the weight matrices float; "q8_0" (default), "q4_0",
        "q4_1", "int4_g64", ... quantize them at load.
    n_threads: threads (default: halfbyte.num_threads()).
    max_length: tokens per text, [CLS] and [SEP] included; longer texts are
        truncated (default: sentence_bert_config.json's max_seq_length, else the
        tokenizer's model_max_length, at most max_position_embeddings).
    precision: matmul precision of quantized layers: "auto" (default: int8
        activations, except the query/key/value and first feed-forward layers,
        whose LayerNorm inputs have outlier channels: float there), "int"
        (int8 activations everywhere: fastest, least accurate) or "float".

A batch of texts runs packed: all tokens of all texts go through the matrix
products at once, without padding, and attention stays within each text.
The GIL is released while encoding; calls from several threads run in parallel.

Raises FileNotFoundError/OSError for a missing file, ValueError for a malformed
one or bad arguments, RuntimeError for an unsupported model.)doc";

const char* kEmbedDoc = R"doc(Embeddings of a list of texts.

Args:
    texts: list (or other iterable) of str. An empty string gives the embedding
        of [CLS] [SEP]; an empty list an array of shape (0, dim).
    batch_size: texts per packed forward pass (sorted by length first).
    normalize: None (as the model says: modules.json's Normalize), True or False
        (L2 normalization).
    progress: None (default), True (a progress bar on stderr: tqdm if it is
        installed, else a line rewritten in place) or a callable f(done, total)
        called with the GIL held after each packed batch with the number of texts
        embedded so far (increasing to total = len(texts)); returning False
        cancels the call (RuntimeError "embed: cancelled ..."), an exception it
        raises propagates. Ctrl-C cancels with KeyboardInterrupt in every case
        (on the main thread).

Returns:
    float32 array [len(texts), dim], in the order of texts.)doc";

}  // namespace

void bind_encoder(py::module_& m) {
  py::class_<PyEncoder>(m, "Encoder", kEncoderDoc)
      .def(py::init<const py::object&, const std::string&, std::optional<int>, std::optional<int64_t>,
                    const std::string&>(),
           py::arg("path"), py::arg("dtype") = "q8_0", py::arg("n_threads") = py::none(),
           py::arg("max_length") = py::none(), py::arg("precision") = "auto")
      .def("embed", &embed, py::arg("texts"), py::arg("batch_size") = 64, py::arg("normalize") = py::none(),
           py::arg("progress") = py::none(), kEmbedDoc)
      .def("logits", &logits, py::arg("texts"), py::arg("batch_size") = 64, kLogitsDoc)
      .def("classify", &classify, py::arg("texts"), py::arg("top_k") = 1, py::arg("function_to_apply") = py::none(),
           py::arg("batch_size") = 64, kClassifyDoc)
      .def("score", &score, py::arg("query"), py::arg("passages"), py::arg("sigmoid") = false,
           py::arg("batch_size") = 64, kScoreDoc)
      .def(
          "tokenize",
          [](const PyEncoder& self, const std::string& text) {
            const auto enc = self.get();
            py::gil_scoped_release nogil;
            return enc->tokenize(text).ids;
          },
          py::arg("text"), "Token ids of text (list of int) with [CLS] and [SEP], truncated to max_length.")
      .def(
          "tokenize_pair",
          [](const PyEncoder& self, const std::string& a, const std::string& b) {
            const auto enc = self.get();
            halfbyte::model::Encoding e;
            {
              py::gil_scoped_release nogil;
              e = enc->tokenize_pair(a, b);
            }
            return std::make_pair(e.ids, e.type_ids);
          },
          py::arg("a"), py::arg("b"),
          "(ids, token_type_ids) of the pair: [CLS] a [SEP] b [SEP], types 0 then 1; the longer text is\n"
          "truncated first to fit max_length.")
      .def_property_readonly(
          "dim", [](const PyEncoder& self) { return self.get()->dim(); }, "Embedding dimension (int).")
      .def_property_readonly(
          "max_length", [](const PyEncoder& self) { return self.get()->config().max_length; },
          "Tokens per text, [CLS] and [SEP] included (int).")
      .def_property_readonly(
          "pooling",
          [](const PyEncoder& self) {
            return self.get()->config().pooling == halfbyte::model::Pooling::Cls ? "cls" : "mean";
          },
          "'mean' or 'cls'.")
      .def_property_readonly(
          "normalize", [](const PyEncoder& self) { return self.get()->config().normalize; },
          "True if embed() L2-normalizes by default (modules.json has Normalize).")
      .def_property_readonly(
          "labels", [](const PyEncoder& self) { return self.get()->labels(); },
          "Labels of the classification head in logit order (config.json id2label); [] without a head.")
      .def_property_readonly(
          "problem_type",
          [](const PyEncoder& self) -> std::optional<std::string> {
            const auto enc = self.get();
            if (enc->n_labels() == 0) return std::nullopt;
            switch (enc->config().problem_type) {
              case halfbyte::model::ProblemType::MultiLabel: return "multi_label_classification";
              case halfbyte::model::ProblemType::Regression: return "regression";
              default: return "single_label_classification";
            }
          },
          "The head's problem_type ('single_label_classification', 'multi_label_classification',\n"
          "'regression'; inferred from the number of labels when config.json has none); None without a head.")
      .def("close", &PyEncoder::close, "Free the encoder's memory (after running calls end); later calls raise ValueError.")
      .def("__enter__", [](PyEncoder& self) -> PyEncoder& { return self; }, py::return_value_policy::reference)
      .def("__exit__", [](PyEncoder& self, const py::args&) { self.close(); });
}
