// Python bindings of halfbyte::model::Model: load, tokenize, logits, generate.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "halfbyte/halfbyte.hpp"
#include "halfbyte/model/model.hpp"
#include "halfbyte/model/tokenizer.hpp"

namespace py = pybind11;
using halfbyte::model::Model;
using halfbyte_py::lock_without_gil;
using halfbyte_py::PyProgress;

namespace {

// The Python object: a Model plus a lock (one call at a time per model: calls
// from several Python threads on the same Model queue up; different models run
// in parallel) and an explicit close(). The lock is always taken with the GIL
// released (lock_without_gil): its holder may need the GIL to finish.
class PyModel {
 public:
  PyModel(const std::string& path, const std::optional<std::string>& tokenizer, std::optional<int> n_threads,
          std::optional<int64_t> n_ctx, const std::string& precision, const std::optional<std::string>& quantize,
          const std::string& kv_cache, const py::object& progress, std::optional<int64_t> n_batch) {
    halfbyte::model::LoadOptions o;
    if (n_batch) {
      if (*n_batch < 1) throw py::value_error("Model: n_batch must be >= 1, got " + std::to_string(*n_batch));
      o.n_batch = *n_batch;
    }
    if (kv_cache != "f16" && kv_cache != "f32")
      throw py::value_error("Model: kv_cache must be 'f16' or 'f32', got '" + kv_cache + "'");
    o.kv_f16 = kv_cache == "f16";
    if (tokenizer) {
      if (tokenizer->empty()) throw py::value_error("Model: tokenizer must be a file path, got ''");
      o.tokenizer = *tokenizer;
    }
    if (quantize) {
      if (quantize->empty()) throw py::value_error("Model: quantize must be a format name or None, got ''");
      o.quantize = *quantize;
    }
    if (precision != "int" && precision != "float")
      throw py::value_error("Model: precision must be 'int' or 'float', got '" + precision + "'");
    o.float_matmul = precision == "float";
    if (n_threads) {
      if (*n_threads < 1) throw py::value_error("Model: n_threads must be >= 1, got " + std::to_string(*n_threads));
      o.n_threads = *n_threads;
    }
    if (n_ctx) {
      if (*n_ctx < 1) throw py::value_error("Model: n_ctx must be >= 1, got " + std::to_string(*n_ctx));
      o.n_ctx = *n_ctx;
    }
    if (!progress.is_none() && !PyCallable_Check(progress.ptr()))
      throw py::value_error("Model: progress must be None or a callable f(fraction) -> bool, got " +
                            py::str(py::type::of(progress)).cast<std::string>());
    // Checks for Ctrl-C after each layer even without a callable.
    PyProgress report(progress);
    o.progress = report.function();
    try {
      py::gil_scoped_release nogil;
      m_ = Model::load(path, o);
    } catch (const halfbyte::Error&) {
      report.rethrow_if_failed();  // KeyboardInterrupt or the callable's exception
      throw;
    }
  }

  Model& get() {
    if (!m_) throw py::value_error("Model: the model is closed");
    return *m_;
  }
  void close() {
    const auto lock = lock_without_gil(mu_);
    std::unique_ptr<Model> m = std::move(m_);
    py::gil_scoped_release nogil;  // unmapping and freeing a large model takes a while
    m.reset();
  }
  std::mutex& mutex() { return mu_; }

 private:
  std::unique_ptr<Model> m_;
  std::mutex mu_;
};

// Token ids from any iterable of integers (int, numpy integers): TypeError for a
// non-integer, ValueError for an id outside the vocabulary.
std::vector<int32_t> ids_from(const py::handle& ids, int64_t n_vocab) {
  std::vector<int32_t> out;
  for (const auto& item : ids) {
    const auto idx = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
    if (!idx) {
      PyErr_Clear();
      throw py::type_error("token ids must be integers, got " +
                           py::str(py::type::of(item).attr("__name__")).cast<std::string>());
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
    if (overflow != 0 || v < 0 || v >= n_vocab)
      throw py::value_error("token id " + py::str(idx).cast<std::string>() + " is outside the vocabulary [0, " +
                            std::to_string(n_vocab) + ")");
    out.push_back(int32_t(v));
  }
  return out;
}

// A seed: None (random) or an int in [0, 2**64).
std::optional<uint64_t> seed_from(const py::object& seed) {
  if (seed.is_none()) return std::nullopt;
  const auto idx = py::reinterpret_steal<py::object>(PyNumber_Index(seed.ptr()));
  if (idx) {
    const unsigned long long v = PyLong_AsUnsignedLongLong(idx.ptr());
    if (!PyErr_Occurred()) return uint64_t(v);
  }
  PyErr_Clear();
  throw py::value_error("generate: seed must be None or an int in [0, 2**64), got " + py::repr(seed).cast<std::string>());
}

halfbyte::model::SamplingParams sampling(int max_tokens, float temperature, int top_k, float top_p, float min_p,
                                         float repeat_penalty, std::optional<uint64_t> seed,
                                         const std::vector<std::string>& stop) {
  if (max_tokens < 0) throw py::value_error("generate: max_tokens must be >= 0, got " + std::to_string(max_tokens));
  halfbyte::model::SamplingParams p;
  p.max_tokens = max_tokens;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repeat_penalty = repeat_penalty;
  p.has_seed = seed.has_value();
  p.seed = seed.value_or(0);
  p.stop = stop;
  return p;
}

const char* kModelDoc = R"doc(A Llama-family model (Llama, SmolLM2, TinyLlama, Mistral, Qwen2) from a GGUF
file, a llama2.c checkpoint or an HF safetensors folder.

    Model(path, tokenizer=None, n_threads=None, n_ctx=None, precision="int", quantize=None,
          kv_cache="f16", progress=None, n_batch=None)

tokenizer: a llama2.c tokenizer.bin or HF tokenizer.json for models without one.
quantize: format of weights stored as float ("q4_0", "q4_1", "q8_0", "int4_g64",
..., or "f32"); default q8_0 for llama2.c/safetensors, float for GGUF.
kv_cache: "f16" (default) or "f32" elements in the KV cache.
n_batch: tokens per forward pass when evaluating a prompt (default 256; at most n_ctx).
n_threads: threads for this model (default halfbyte.num_threads()); n_ctx: context
length (default: the model's, at most 4096). Use as a context manager, or call
close(), to free its memory at once. Calls on one Model from several Python
threads run one at a time; different Models run in parallel.
progress: None or a callable f(fraction) called with the GIL after each layer is
loaded (return False to cancel: RuntimeError). Ctrl-C cancels the load (and
generate()) with KeyboardInterrupt. halfbyte.Model adds progress=True (a bar).

Raises FileNotFoundError/OSError for a missing file, ValueError for a malformed
one or bad arguments, RuntimeError for an unsupported architecture or type.)doc";

}  // namespace

void bind_model(py::module_& m) {
  py::class_<PyModel>(m, "Model", kModelDoc)
      .def(py::init<const std::string&, const std::optional<std::string>&, std::optional<int>,
                    std::optional<int64_t>, const std::string&, const std::optional<std::string>&,
                    const std::string&, const py::object&, std::optional<int64_t>>(),
           py::arg("path"), py::arg("tokenizer") = py::none(), py::arg("n_threads") = py::none(),
           py::arg("n_ctx") = py::none(), py::arg("precision") = "int", py::arg("quantize") = py::none(),
           py::arg("kv_cache") = "f16", py::arg("progress") = py::none(), py::arg("n_batch") = py::none())
      .def("tokenize",
           [](PyModel& self, const std::string& text, bool add_special) {
             const auto lock = lock_without_gil(self.mutex());
             const Model& mdl = self.get();
             std::vector<int32_t> ids;
             {
               py::gil_scoped_release nogil;  // long texts take a while
               ids = mdl.tokenize(text, add_special);
             }
             return ids;
           },
           py::arg("text"), py::arg("add_special") = true,
           "Token ids (list of int) of a str; add_special adds BOS/EOS as the model's metadata says.")
      .def("detokenize",
           [](PyModel& self, const py::iterable& ids) {
             const auto lock = lock_without_gil(self.mutex());
             const Model& mdl = self.get();
             const auto v = ids_from(ids, mdl.config().n_vocab);
             std::string text;
             {
               py::gil_scoped_release nogil;
               text = mdl.detokenize(v);
             }
             return py::bytes(text).attr("decode")("utf-8", "replace");
           },
           py::arg("ids"), "Text (str) of token ids; invalid UTF-8 is replaced.")
      .def("logits",
           [](PyModel& self, const py::iterable& ids) {
             const auto lock = lock_without_gil(self.mutex());
             Model& mdl = self.get();
             const auto v = ids_from(ids, mdl.config().n_vocab);
             if (v.empty()) throw py::value_error("logits: ids is empty");
             std::vector<float> out;
             {
               py::gil_scoped_release nogil;
               mdl.reset();
               out = mdl.eval(v, true);
             }
             py::array_t<float> a({py::ssize_t(v.size()), py::ssize_t(mdl.config().n_vocab)});
             std::copy(out.begin(), out.end(), a.mutable_data());
             return a;
           },
           py::arg("ids"),
           "Logits (float32 numpy [len(ids), n_vocab]) after each token of ids, from an empty context.")
      .def("generate",
           [](PyModel& self, const std::string& prompt, int max_tokens, float temperature, int top_k, float top_p,
              float min_p, float repeat_penalty, const py::object& seed, const std::vector<std::string>& stop,
              bool chat) {
             const auto lock = lock_without_gil(self.mutex());
             const auto p = sampling(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed_from(seed), stop);
             std::string text;
             // Ctrl-C stops generation (checked once per token on the main thread).
             PyProgress interrupt;
             {
               Model& mdl = self.get();
               py::gil_scoped_release nogil;
               text = mdl.generate(prompt, p, [&](std::string_view) { return interrupt.call(0.0f); }, nullptr, chat);
             }
             interrupt.rethrow_if_failed();
             return py::bytes(text).attr("decode")("utf-8", "replace");
           },
           py::arg("prompt"), py::arg("max_tokens") = 128, py::arg("temperature") = 0.0f, py::arg("top_k") = 40,
           py::arg("top_p") = 0.95f, py::arg("min_p") = 0.0f, py::arg("repeat_penalty") = 1.0f,
           py::arg("seed") = py::none(), py::arg("stop") = std::vector<std::string>{}, py::arg("chat") = false,
           "Generated text (str, without the prompt). Greedy when temperature == 0.")
      .def("generate_stream",
           [](PyModel& self, const std::string& prompt, const py::function& on_piece, int max_tokens,
              float temperature, int top_k, float top_p, float min_p, float repeat_penalty,
              const py::object& seed, const std::vector<std::string>& stop, bool chat) {
             const auto lock = lock_without_gil(self.mutex());
             const auto p = sampling(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed_from(seed), stop);
             halfbyte::model::GenerateStats st;
             Model& mdl = self.get();
             py::gil_scoped_release nogil;
             mdl.generate(
                 prompt, p,
                 [&](std::string_view piece) {
                   py::gil_scoped_acquire gil;
                   if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C (main thread)
                   const py::object r = on_piece(py::bytes(std::string(piece)).attr("decode")("utf-8", "replace"));
                   return r.is_none() || r.cast<bool>();
                 },
                 &st, chat);
             py::gil_scoped_acquire gil;
             py::dict d;
             d["prompt_tokens"] = st.prompt_tokens;
             d["generated_tokens"] = st.generated_tokens;
             d["prompt_tokens_per_s"] = st.prompt_tps();
             d["decode_tokens_per_s"] = st.decode_tps();
             return d;
           },
           py::arg("prompt"), py::arg("on_piece"), py::arg("max_tokens") = 128, py::arg("temperature") = 0.0f,
           py::arg("top_k") = 40, py::arg("top_p") = 0.95f, py::arg("min_p") = 0.0f,
           py::arg("repeat_penalty") = 1.0f, py::arg("seed") = py::none(),
           py::arg("stop") = std::vector<std::string>{}, py::arg("chat") = false,
           "Like generate(), calling on_piece(str) for each piece of text as it comes (return False to "
           "stop); returns a dict of token counts and speeds. Used by halfbyte.Model.generate(stream=True).")
      .def_property_readonly(
          "config",
          [](PyModel& self) {
            const auto lock = lock_without_gil(self.mutex());
            const auto& c = self.get().config();
            py::dict d;
            d["arch"] = c.arch;
            d["n_vocab"] = c.n_vocab;
            d["n_embd"] = c.n_embd;
            d["n_layer"] = c.n_layer;
            d["n_head"] = c.n_head;
            d["n_head_kv"] = c.n_head_kv;
            d["head_dim"] = c.head_dim;
            d["n_ff"] = c.n_ff;
            d["n_ctx_train"] = c.n_ctx_train;
            d["n_ctx"] = self.get().n_ctx();
            d["rope_theta"] = c.rope_theta;
            d["rms_eps"] = c.rms_eps;
            d["tied_output"] = c.tied_output;
            return d;
          },
          "Model hyper-parameters (dict).")
      .def(
          "memory",
          [](PyModel& self) {
            const auto lock = lock_without_gil(self.mutex());
            const halfbyte::model::MemoryReport r = self.get().memory();
            py::dict d;
            d["file"] = r.file;
            d["weights_owned"] = r.weights_owned;
            d["weights_mapped"] = r.weights_mapped;
            d["mapped_resident"] = r.mapped_resident;
            d["kv_cache"] = r.kv_cache;
            d["kv_cache_resident"] = r.kv_cache_resident;
            d["scratch"] = r.scratch;
            d["scratch_resident"] = r.scratch_resident;
            d["tokenizer"] = r.tokenizer;
            d["resident"] = r.resident();
            d["reserved"] = r.reserved();
            return d;
          },
          "Bytes of memory by kind (dict); see halfbyte.Model.memory.")
      .def("close", &PyModel::close, "Free the model's memory; later calls raise ValueError.")
      .def("__enter__", [](PyModel& self) -> PyModel& { return self; }, py::return_value_policy::reference)
      .def("__exit__", [](PyModel& self, const py::args&) { self.close(); });
}
