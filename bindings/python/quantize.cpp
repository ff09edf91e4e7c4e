// Python binding of whole-model quantization: _core.quantize_model(...) -> list of
// dicts. halfbyte/quantize_model.py wraps it (paths, progress bars, warnings).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "common.hpp"
#include "halfbyte/quant/model_quantize.hpp"

namespace py = pybind11;
using halfbyte_py::PyProgress;

namespace {

// Returns (table, warnings): the caller turns warnings into Python warnings.
py::tuple quantize_model(const std::string& in, const std::string& out, const std::string& type,
                         const std::string& imatrix, const std::string& tokenizer, int n_threads, bool pure,
                         const py::object& progress) {
  if (n_threads < 0) throw py::value_error("quantize_model: n_threads must be >= 0, got " + std::to_string(n_threads));
  halfbyte::quant::ModelQuantizeOptions o;
  o.type = type;
  o.imatrix = imatrix;
  o.tokenizer = tokenizer;
  o.n_threads = n_threads;
  o.pure = pure;
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

}  // namespace

void bind_quantize(py::module_& m) {
  m.def("quantize_model", &quantize_model, py::arg("path_in"), py::arg("path_out"), py::arg("type"),
        py::arg("imatrix") = "", py::arg("tokenizer") = "", py::arg("n_threads") = 0, py::arg("pure") = false,
        py::arg("progress") = py::none(), "Quantize a model to a GGUF file; use halfbyte.quantize_model().");
  m.attr("QUANTIZE_TYPES") = py::cast(halfbyte::quant::model_quantize_types());
}
