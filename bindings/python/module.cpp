// halfbyte._core: the pybind11 extension behind the `halfbyte` Python package.
//
// Thin on purpose: Python <-> C++ type conversion, the checks that only make sense
// on the Python side (dtype, rank, lengths of numpy arrays), docstrings, and the
// translation of halfbyte::Error into Python exceptions. All quantization logic is
// halfbyte::quant::quantize / dequantize from the C++ headers.
//
// A QTensor (common.hpp) is a halfbyte::quant::QMatrix held by std::shared_ptr. It
// is immutable after construction, which is what makes the read-only buffer export
// safe. Model is bound in model.cpp, load_gguf / save_gguf in gguf.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
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
using halfbyte::ops::PackedMatrix;

using halfbyte_py::QTensor;
using halfbyte_py::QTensorPtr;

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
  return std::make_shared<QTensor>(std::move(q));
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
  return std::make_shared<QTensor>(QMatrix::from_bytes(f, rows, cols, view.buf, len));
}

halfbyte::ops::Precision parse_precision(const std::string& name) {
  std::string s = name;
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (s == "auto") return halfbyte::ops::Precision::Auto;
  if (s == "int") return halfbyte::ops::Precision::Int;
  if (s == "float") return halfbyte::ops::Precision::Float;
  value_error("matmul: unknown precision '" + name + "' (expected 'auto', 'int' or 'float')");
}

py::array_t<float> matmul(py::array x, const py::object& w, const std::string& precision,
                          std::optional<int> n_threads) {
  if (!x.dtype().equal(py::dtype::of<float>()))
    value_error("matmul: x must have dtype float32, got " + dtype_name(x));
  if (x.ndim() != 1 && x.ndim() != 2)
    value_error("matmul: x must be 1-D [K] or 2-D [M, K], got shape " + shape_name(x));
  halfbyte::ops::MatmulOptions opts;
  opts.precision = parse_precision(precision);
  if (n_threads) {
    if (*n_threads < 1) value_error("matmul: n_threads must be >= 1, got " + std::to_string(*n_threads));
    opts.n_threads = *n_threads;
  }
  const bool vec = x.ndim() == 1;
  const int64_t M = vec ? 1 : x.shape(0), K = x.shape(x.ndim() - 1);
  x = py::array::ensure(x, py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_);
  if (!x) throw py::error_already_set();

  const QTensor* q = nullptr;
  py::array wa;
  int64_t N = 0, wk = 0;
  bool w_f16 = false;
  if (py::isinstance<QTensor>(w)) {
    q = &w.cast<const QTensor&>();
    N = q->rows();
    wk = q->cols();
  } else if (py::isinstance<py::array>(w)) {
    wa = w.cast<py::array>();
    w_f16 = wa.dtype().equal(py::dtype("float16"));
    if (!w_f16 && !wa.dtype().equal(py::dtype::of<float>()))
      value_error("matmul: w must be a QTensor or a float32/float16 array, got dtype " + dtype_name(wa));
    if (wa.ndim() != 2) value_error("matmul: w must be 2-D [N, K], got shape " + shape_name(wa));
    wa = py::array::ensure(wa, py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_);
    if (!wa) throw py::error_already_set();
    N = wa.shape(0);
    wk = wa.shape(1);
  } else {
    value_error("matmul: w must be a QTensor or a 2-D numpy array, got " +
                py::str(py::type::of(w)).cast<std::string>());
  }
  if (wk != K)
    value_error("matmul: x has K = " + std::to_string(K) + " but w is [" + std::to_string(N) + ", " +
                std::to_string(wk) + "] (w must be [N, K])");
  py::array_t<float> out = vec ? py::array_t<float>({py::ssize_t(N)}) : py::array_t<float>({py::ssize_t(M), py::ssize_t(N)});
  const TensorView<const float> xv(static_cast<const float*>(x.data()), {M, K});
  const TensorView<float> yv(out.mutable_data(), {M, N});
  {
    py::gil_scoped_release nogil;
    if (q)
      halfbyte::ops::matmul(xv, q->packed(), yv, opts);
    else if (w_f16)
      halfbyte::ops::matmul(xv, TensorView<const f16>(static_cast<const f16*>(wa.data()), {N, K}), yv, opts);
    else
      halfbyte::ops::matmul(xv, TensorView<const float>(static_cast<const float*>(wa.data()), {N, K}), yv, opts);
  }
  return out;
}

const char* kMatmulDoc = R"doc(y = x @ w.T with quantized (or float) weights.

Args:
    x: float32 array [M, K] or [K] (copied first if not C-contiguous).
    w: QTensor [N, K] (packed for the kernels on first use and cached in the
       tensor), or a float32 / float16 numpy array [N, K].
    precision: "auto" (= "int" for quantized w), "int" (activations quantized
       per 32-block to int8, integer dot products), or "float" (weights
       dequantized to float32 in registers). Ignored for float w.
    n_threads: threads for this call (default: halfbyte.num_threads()).

Returns:
    float32 array [M, N] (or [N] for 1-D x).

Raises:
    ValueError: wrong dtypes, ranks or K, unknown precision, n_threads < 1.

The GIL is released during the computation.)doc";

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

void bind_model(py::module_& m);  // model.cpp
void bind_gguf(py::module_& m);   // gguf.cpp
void bind_encoder(py::module_& m);  // encoder.cpp
void bind_quantize(py::module_& m);  // quantize.cpp

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
        case ErrorKind::Io:  // a missing file is the common case: FileNotFoundError (an OSError)
          type = std::strstr(e.what(), "No such file or directory") ? PyExc_FileNotFoundError : PyExc_OSError;
          break;
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

  py::class_<QTensor, QTensorPtr>(m, "QTensor", py::buffer_protocol(), R"doc(
A quantized matrix [rows, cols]: raw block bytes in GGUF layout, rows back to back.

Immutable. Create one with halfbyte.quantize() or QTensor.from_bytes().
Supports the buffer protocol as a read-only 1-D uint8 view of its bytes, shared
without a copy: np.frombuffer(qt, np.uint8) and memoryview(qt) alias its memory.
Picklable; == compares format, shape and bytes.)doc")
      .def_property_readonly(
          "format", [](const QTensor& q) { return q.format().name(); },
          "Format name (str), e.g. 'q4_0'.")
      .def_property_readonly(
          "shape", [](const QTensor& q) { return py::make_tuple(q.rows(), q.cols()); },
          "(rows, cols) of the unquantized matrix (tuple of int).")
      .def_property_readonly("nbytes", &QMatrix::nbytes,
                             "Size of the raw block bytes (int) = rows * bytes per row.")
      .def("dequantize", &dequantize, kDequantizeDoc)
      .def("to_bytes", [](const QTensor& q) { return raw_bytes(q); },
           "Copy of the raw block bytes (bytes, length nbytes), GGUF layout, rows back to back.")
      .def_static("from_bytes", &from_bytes, py::arg("buf"), py::arg("fmt"), py::arg("shape"),
                  kFromBytesDoc)
      .def("__repr__",
           [](const QTensor& q) {
             return "QTensor(format='" + q.format().name() + "', shape=(" +
                    std::to_string(q.rows()) + ", " + std::to_string(q.cols()) +
                    "), nbytes=" + std::to_string(q.nbytes()) + ")";
           })
      .def(
          "__eq__",
          [](const QTensor& a, const QTensor& b) {
            return a.format() == b.format() && a.rows() == b.rows() && a.cols() == b.cols() &&
                   (a.nbytes() == 0 || std::memcmp(a.data(), b.data(), a.nbytes()) == 0);
          },
          py::is_operator(), "True if format, shape and bytes are equal.")
      .def_buffer([](QTensor& q) {
        static uint8_t empty = 0;  // a valid address for a 0-byte view
        return py::buffer_info(q.nbytes() ? q.data() : &empty, 1,
                               py::format_descriptor<uint8_t>::format(), 1,
                               {py::ssize_t(q.nbytes())}, {py::ssize_t(1)}, /*readonly=*/true);
      })
      .def(py::pickle(
          [](const QTensor& q) {  // __getstate__: (format, (rows, cols), bytes)
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
  m.def("matmul", &matmul, py::arg("x"), py::arg("w"), py::arg("precision") = "auto",
        py::arg("n_threads") = py::none(), kMatmulDoc);
  m.def(
      "set_num_threads", [](int n) { halfbyte::set_num_threads(n); }, py::arg("n"),
      "Threads used by calls that do not pass n_threads (1 <= n <= 1024). Raises ValueError outside that range.");
  m.def("num_threads", &halfbyte::num_threads, "Threads used by default (int).");
  bind_model(m);
  bind_gguf(m);
  bind_encoder(m);
  bind_quantize(m);
  m.def("dequantize", &dequantize, py::arg("qt"),
        "Same as qt.dequantize(): a new float32 array of shape qt.shape.");
}
