// Python bindings of halfbyte::model::Encoder: load, embed, tokenize.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "halfbyte/halfbyte.hpp"
#include "halfbyte/model/encoder.hpp"

namespace py = pybind11;
using halfbyte::model::Encoder;

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

py::array_t<float> embed(const PyEncoder& self, const py::object& texts, int batch_size,
                         std::optional<bool> normalize) {
  const std::vector<std::string> list = text_list(texts, "Encoder.embed");
  if (batch_size < 1) throw py::value_error("Encoder.embed: batch_size must be >= 1, got " + std::to_string(batch_size));
  const auto enc = self.get();
  const int64_t dim = enc->dim();
  std::vector<float> out;
  {
    py::gil_scoped_release nogil;
    out = enc->embed(list, normalize ? int(*normalize) : -1, batch_size);
  }
  py::array_t<float> a({py::ssize_t(list.size()), py::ssize_t(dim)});
  if (!out.empty()) std::memcpy(a.mutable_data(), out.data(), out.size() * sizeof(float));
  return a;
}

const char* kEncoderDoc = R"doc(A BERT-family text encoder (BERT, MiniLM, bge, e5) for sentence embeddings.

Args:
    path: a Hugging Face model folder (or its model.safetensors): config.json
        (model_type "bert"), model.safetensors (F32, F16 or BF16), tokenizer.json
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
           kEmbedDoc)
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
      .def("close", &PyEncoder::close, "Free the encoder's memory (after running calls end); later calls raise ValueError.")
      .def("__enter__", [](PyEncoder& self) -> PyEncoder& { return self; }, py::return_value_policy::reference)
      .def("__exit__", [](PyEncoder& self, const py::args&) { self.close(); });
}
