// Python binding of whole-model quantization: _core.quantize_model(...) -> list of
// dicts. halfbyte/quantize_model.py wraps it (paths, progress bars, warnings).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "halfbyte/model/model.hpp"
#include "halfbyte/model/perplexity.hpp"
#include "halfbyte/quant/model_quantize.hpp"

namespace py = pybind11;
using halfbyte_py::PyProgress;

namespace {

// Returns (table, warnings): the caller turns warnings into Python warnings.
py::tuple quantize_model(const std::string& in, const std::string& out, const std::string& type,
                         const std::string& imatrix, const std::string& tokenizer, int n_threads, bool pure,
                         bool gptq, const py::object& progress) {
  if (n_threads < 0) throw py::value_error("quantize_model: n_threads must be >= 0, got " + std::to_string(n_threads));
  halfbyte::quant::ModelQuantizeOptions o;
  o.type = type;
  o.imatrix = imatrix;
  o.tokenizer = tokenizer;
  o.n_threads = n_threads;
  o.pure = pure;
  o.gptq = gptq;
  std::vector<std::string> warnings;
  o.warn = [&warnings](const std::string& m) { warnings.push_back(m); };
  PyProgress report(progress);
  // One fraction over the whole model: tensor i of n at fraction f is (i + f) / n.
  o.progress = [&report](size_t i, size_t n, const std::string&, float f) {
    return report.call((float(i) + f) / float(n));
  };
  std::vector<halfbyte::quant::TensorQuantInfo> table;
  try {
    py::gil_scoped_release nogil;
    table = halfbyte::quant::quantize_model(in, out, o);
  } catch (const halfbyte::Error&) {
    report.rethrow_if_failed();
    throw;
  }
  py::list rows;
  for (const auto& t : table) {
    py::dict d;
    d["name"] = t.name;
    d["source_type"] = t.source_type;
    d["type"] = t.type;
    d["shape"] = py::tuple(py::cast(std::vector<int64_t>(t.shape.rbegin(), t.shape.rend())));
    d["bytes"] = t.bytes;
    d["rel_rms_error"] = t.rel_rms_error;
    rows.append(d);
  }
  return py::make_tuple(rows, py::cast(warnings));
}

py::dict stats_dict(const halfbyte::model::PerplexityStats& s) {
  py::dict d;
  d["chunks"] = s.chunks;
  d["scored"] = s.scored;
  d["ppl"] = s.ppl;
  d["ppl_err"] = s.ppl_err;
  d["nll"] = s.nll;
  if (s.has_base) {
    d["base_ppl"] = s.base_ppl;
    d["kl"] = s.kl;
    d["kl_err"] = s.kl_err;
    d["top1"] = s.top1;
    d["top1_err"] = s.top1_err;
  }
  return d;
}

// Loads the model (and base) with n_ctx = ctx, then scores the text. progress gets
// the fraction of chunks done; returning False stops early (RuntimeError).
py::dict perplexity(const std::string& path, const std::string& text, int64_t ctx, const std::string& base_path,
                    int64_t max_chunks, int n_threads, const py::object& progress) {
  if (ctx < 4) throw py::value_error("perplexity: ctx must be >= 4, got " + std::to_string(ctx));
  if (max_chunks < 0) throw py::value_error("perplexity: chunks must be >= 1 or None");
  if (n_threads < 0) throw py::value_error("perplexity: n_threads must be >= 1 or None");
  PyProgress report(progress);
  halfbyte::model::PerplexityStats st;
  bool stopped = false;
  try {
    py::gil_scoped_release nogil;
    halfbyte::model::LoadOptions lo;
    lo.n_ctx = ctx;
    lo.n_threads = n_threads;
    auto m = halfbyte::model::Model::load(path, lo);
    std::unique_ptr<halfbyte::model::Model> base;
    if (!base_path.empty()) base = halfbyte::model::Model::load(base_path, lo);
    halfbyte::model::PerplexityOptions po;
    po.n_ctx = ctx;
    po.max_chunks = max_chunks;
    po.progress = [&](const halfbyte::model::PerplexityStats& s) {
      const bool go = report.call(float(s.chunks) / float(s.chunks_total));
      stopped = !go;
      return go;
    };
    st = halfbyte::model::perplexity(*m, text, po, base.get());
  } catch (const halfbyte::Error&) {
    report.rethrow_if_failed();
    throw;
  }
  report.rethrow_if_failed();
  if (stopped) throw halfbyte::Error(halfbyte::ErrorKind::Runtime, path + ": perplexity cancelled");
  return stats_dict(st);
}

}  // namespace

void bind_quantize(py::module_& m) {
  m.def("quantize_model", &quantize_model, py::arg("path_in"), py::arg("path_out"), py::arg("type"),
        py::arg("imatrix") = "", py::arg("tokenizer") = "", py::arg("n_threads") = 0, py::arg("pure") = false,
        py::arg("gptq") = true, py::arg("progress") = py::none(), "Quantize a model to a GGUF file; use halfbyte.quantize_model().");
  m.def("perplexity", &perplexity, py::arg("path"), py::arg("text"), py::arg("ctx") = 512,
        py::arg("base") = "", py::arg("chunks") = 0, py::arg("n_threads") = 0, py::arg("progress") = py::none(),
        "Perplexity (and KL vs a base model) by llama.cpp's method; use halfbyte.perplexity().");
  m.attr("QUANTIZE_TYPES") = py::cast(halfbyte::quant::model_quantize_types());
}
