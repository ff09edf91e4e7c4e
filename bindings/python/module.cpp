// halfbyte._core: the pybind11 extension behind the `halfbyte` Python package.
//
// Thin on purpose: Python <-> C++ type conversion, the checks that only make sense
// on the Python side (dtype, rank, lengths of numpy arrays), docstrings, and the
// translation of halfbyte::Error into Python exceptions. All quantization logic is
// halfbyte::quant::quantize / dequantize from the C++ headers.
//
// A QTensor is a halfbyte::quant::QMatrix held by std::shared_ptr. It is immutable
// after construction, which is what makes the read-only buffer export safe.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "halfbyte/halfbyte.hpp"

namespace py = pybind11;

namespace {

using halfbyte::ErrorKind;
using halfbyte::f16;
using halfbyte::TensorView;
using halfbyte::quant::Format;
using halfbyte::quant::Method;
using halfbyte::quant::QMatrix;
using halfbyte::quant::QuantizeOptions;
using QTensorPtr = std::shared_ptr<QMatrix>;

// ---- helpers -----------------------------------------------------------------------

[[noreturn]] void value_error(const std::string& message) { throw py::value_error(message); }

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

std::string shape_name(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Format::parse with the caller and argument named in the message.
Format parse_format(const char* where, const std::string& fmt) {
  try {
    return Format::parse(fmt);
  } catch (const halfbyte::Error& e) {
    value_error(std::string(where) + ": fmt: " + e.what());
  }
}

// Rows are quantized along the columns: cols must be a whole number of blocks.
void check_cols(const char* what, int64_t cols, const Format& f) {
  if (cols <= 0 || cols % f.block_size() != 0)
    value_error(std::string(what) + " has " + std::to_string(cols) + " columns; " + f.name() +
                " needs a positive multiple of its block size " + std::to_string(f.block_size()));
}

Method parse_method(const std::string& name) {
  std::string s = name;
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (s == "auto") return Method::Auto;
  if (s == "rtn") return Method::RTN;
  value_error("quantize: unknown method '" + name + "' (expected 'auto' or 'rtn')");
}

// Per-column importance as a float32 copy (any floating dtype is accepted and cast).
std::vector<float> importance_copy(const py::array& w, int64_t cols) {
  if (w.dtype().kind() != 'f')
    value_error("quantize: importance must be a floating-point array, got dtype " + dtype_name(w));
  if (w.ndim() != 1 || w.shape(0) != cols)
    value_error("quantize: importance must be 1-D with one weight per column of a (" +
                std::to_string(cols) + "), got shape " + shape_name(w));
  auto f = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(w);
  if (!f) throw py::error_already_set();
  return std::vector<float>(f.data(), f.data() + cols);
}

py::bytes raw_bytes(const QMatrix& q) {
  return py::bytes(reinterpret_cast<const char*>(q.data()), py::ssize_t(q.nbytes()));
}

// ---- functions -----------------------------------------------------------------------

QTensorPtr quantize(py::array a, const std::string& fmt, const std::string& method,
                    const std::optional<py::array>& importance) {
  const bool is_f32 = a.dtype().equal(py::dtype::of<float>());
  const bool is_f16 = a.dtype().equal(py::dtype("float16"));
  if (!is_f32 && !is_f16)
    value_error("quantize: a must have dtype float32 or float16 (native byte order), got " +
                dtype_name(a) + "; convert with a.astype(np.float32)");
  if (a.ndim() != 2)
    value_error("quantize: a must be a 2-D array [rows, cols], got " + std::to_string(a.ndim()) +
                "-D shape " + shape_name(a));
  const Format f = parse_format("quantize", fmt);
  QuantizeOptions opts;
  opts.method = parse_method(method);
  const int64_t rows = a.shape(0), cols = a.shape(1);
  check_cols("quantize: a", cols, f);
  std::vector<float> w;
  if (importance && !importance->is_none()) {
    w = importance_copy(*importance, cols);
    opts.importance = w.data();
  }
  // A C-contiguous, aligned array: `a` itself when it already is one, else a copy.
  a = py::array::ensure(a, py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_);
  if (!a) throw py::error_already_set();
  const void* data = a.data();  // `a` keeps the memory alive while the GIL is released
  QMatrix q;
  {
    py::gil_scoped_release nogil;
    if (is_f32)
      q = halfbyte::quant::quantize(
          TensorView<const float>(static_cast<const float*>(data), {rows, cols}), f, opts);
    else  // numpy float16 and halfbyte::f16 are both IEEE binary16 bits
      q = halfbyte::quant::quantize(
          TensorView<const f16>(static_cast<const f16*>(data), {rows, cols}), f, opts);
  }
  return std::make_shared<QMatrix>(std::move(q));
}

py::array_t<float> dequantize(const QTensorPtr& q) {
  py::array_t<float> out({py::ssize_t(q->rows()), py::ssize_t(q->cols())});
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    halfbyte::quant::dequantize(*q, TensorView<float>(dst, {q->rows(), q->cols()}));
  }
  return out;
}

QTensorPtr from_bytes(const py::buffer& buf, const std::string& fmt,
                      const std::pair<int64_t, int64_t>& shape) {
  const Format f = parse_format("QTensor.from_bytes", fmt);
  const auto [rows, cols] = shape;
  if (rows < 0)
    value_error("QTensor.from_bytes: shape[0] (rows) must be >= 0, got " + std::to_string(rows));
  check_cols("QTensor.from_bytes: shape", cols, f);
  const size_t row = halfbyte::quant::row_bytes(f, cols);
  Py_buffer view;
  if (PyObject_GetBuffer(buf.ptr(), &view, PyBUF_SIMPLE) != 0) {
    py::raise_from(PyExc_ValueError, "QTensor.from_bytes: buf must be a C-contiguous buffer");
    throw py::error_already_set();
  }
  std::unique_ptr<Py_buffer, void (*)(Py_buffer*)> release(&view, PyBuffer_Release);
  // Checked before QMatrix allocates, so a bogus shape cannot request a huge buffer.
  const size_t len = size_t(view.len);
  if (len % row != 0 || len / row != uint64_t(rows))
    value_error("QTensor.from_bytes: buf has " + std::to_string(len) + " bytes; " + f.name() +
                " shape (" + std::to_string(rows) + ", " + std::to_string(cols) + ") needs " +
                std::to_string(rows) + " rows x " + std::to_string(row) + " bytes");
  return std::make_shared<QMatrix>(QMatrix::from_bytes(f, rows, cols, view.buf, len));
}

const char* kQuantizeDoc = R"doc(Quantize a matrix row by row, each row along its columns (the GGUF / ONNX
convention for weights W[N, K]).

Args:
    a: 2-D numpy array [rows, cols], dtype float32 or float16. cols must be a
       multiple of the format's block size (32, 64 or 128). A non-contiguous
       (or unaligned) array is first copied to a C-contiguous one. float16 input
       is converted exactly, so it gives the same bytes as a.astype(np.float32).
    fmt: format name, one of halfbyte.FORMATS (case-insensitive).
    method: "auto" searches the scale (and min) minimising the squared error of
       each block as stored, never worse than RTN; "rtn" is round-to-nearest,
       byte-identical to ggml's reference quantizers.
    importance: optional 1-D floating-point array [cols] of finite weights >= 0;
       "auto" then minimises sum_j importance[j] * (a[i, j] - a_hat[i, j])**2.

Returns:
    QTensor of shape (rows, cols).

Raises:
    ValueError: wrong dtype or rank, cols not a multiple of the block size,
       unknown fmt or method, NaN/Inf in a, bad importance, or a value too large
       for the format's 16-bit scale.

The GIL is released while quantizing (rows run in parallel with OpenMP); do not
modify `a` from another thread meanwhile.)doc";

const char* kDequantizeDoc = R"doc(Dequantize to a new float32 numpy array of shape (rows, cols).

The GIL is released while decoding.)doc";

const char* kFromBytesDoc = R"doc(Build a QTensor from raw GGUF-layout block bytes (rows back to back), e.g. a
tensor's data from a GGUF file or the output of to_bytes(). The bytes are copied.

Args:
    buf: any C-contiguous bytes-like object (bytes, bytearray, memoryview,
         numpy array, mmap) of exactly rows * row_bytes(fmt, cols) bytes.
    fmt: format name, one of halfbyte.FORMATS.
    shape: (rows, cols) of the unquantized matrix.

Raises:
    ValueError: unknown fmt, bad shape, or a byte count that does not match.)doc";

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = R"doc(halfbyte._core: C++ core of the halfbyte package (use `import halfbyte`).)doc";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const halfbyte::Error& e) {
      PyObject* type = PyExc_RuntimeError;  // Unsupported, Runtime
      switch (e.kind()) {
        case ErrorKind::InvalidArgument:
        case ErrorKind::Format: type = PyExc_ValueError; break;
        case ErrorKind::Io: type = PyExc_OSError; break;
        case ErrorKind::Unsupported:
        case ErrorKind::Runtime: break;
      }
      PyErr_SetString(type, e.what());
    }
  });

  m.attr("__version__") = halfbyte::library_version();

  m.def("isa", &halfbyte::isa, "Name of the kernel set in use (str), e.g. 'scalar' or 'avx2'.");
  m.def("available_isas", &halfbyte::available_isas,
        "Kernel sets this build contains and this CPU can run (list of str), best last.");
  m.def(
      "set_isa", [](const std::string& name) { halfbyte::set_isa(name); }, py::arg("name"),
      "Select the kernel set by name (one of available_isas()).\n\n"
      "Raises ValueError for an unknown name and RuntimeError for one this build or CPU\n"
      "cannot run. Not meant to be called while other threads run kernels.");

  py::class_<QMatrix, QTensorPtr>(m, "QTensor", py::buffer_protocol(), R"doc(
A quantized matrix [rows, cols]: raw block bytes in GGUF layout, rows back to back.

Immutable. Create one with halfbyte.quantize() or QTensor.from_bytes().
Supports the buffer protocol as a read-only 1-D uint8 view of its bytes, shared
without a copy: np.frombuffer(qt, np.uint8) and memoryview(qt) alias its memory.
Picklable; == compares format, shape and bytes.)doc")
      .def_property_readonly(
          "format", [](const QMatrix& q) { return q.format().name(); },
          "Format name (str), e.g. 'q4_0'.")
      .def_property_readonly(
          "shape", [](const QMatrix& q) { return py::make_tuple(q.rows(), q.cols()); },
          "(rows, cols) of the unquantized matrix (tuple of int).")
      .def_property_readonly("nbytes", &QMatrix::nbytes,
                             "Size of the raw block bytes (int) = rows * bytes per row.")
      .def("dequantize", &dequantize, kDequantizeDoc)
      .def("to_bytes", &raw_bytes,
           "Copy of the raw block bytes (bytes, length nbytes), GGUF layout, rows back to back.")
      .def_static("from_bytes", &from_bytes, py::arg("buf"), py::arg("fmt"), py::arg("shape"),
                  kFromBytesDoc)
      .def("__repr__",
           [](const QMatrix& q) {
             return "QTensor(format='" + q.format().name() + "', shape=(" +
                    std::to_string(q.rows()) + ", " + std::to_string(q.cols()) +
                    "), nbytes=" + std::to_string(q.nbytes()) + ")";
           })
      .def(
          "__eq__",
          [](const QMatrix& a, const QMatrix& b) {
            return a.format() == b.format() && a.rows() == b.rows() && a.cols() == b.cols() &&
                   (a.nbytes() == 0 || std::memcmp(a.data(), b.data(), a.nbytes()) == 0);
          },
          py::is_operator(), "True if format, shape and bytes are equal.")
      .def_buffer([](QMatrix& q) {
        static uint8_t empty = 0;  // a valid address for a 0-byte view
        return py::buffer_info(q.nbytes() ? q.data() : &empty, 1,
                               py::format_descriptor<uint8_t>::format(), 1,
                               {py::ssize_t(q.nbytes())}, {py::ssize_t(1)}, /*readonly=*/true);
      })
      .def(py::pickle(
          [](const QMatrix& q) {  // __getstate__: (format, (rows, cols), bytes)
            return py::make_tuple(q.format().name(), py::make_tuple(q.rows(), q.cols()),
                                  raw_bytes(q));
          },
          [](const py::tuple& t) {  // __setstate__
            if (t.size() != 3) value_error("QTensor.__setstate__: expected (format, shape, bytes)");
            return from_bytes(t[2].cast<py::buffer>(), t[0].cast<std::string>(),
                              t[1].cast<std::pair<int64_t, int64_t>>());
          }));

  m.def("quantize", &quantize, py::arg("a"), py::arg("fmt") = "q4_0", py::arg("method") = "auto",
        py::arg("importance") = py::none(), kQuantizeDoc);
  m.def("dequantize", &dequantize, py::arg("qt"),
        "Same as qt.dequantize(): a new float32 array of shape qt.shape.");
}
