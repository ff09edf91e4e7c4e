// Python bindings of GGUF reading and writing for inspection and small tools:
// _core.load_gguf(path, progress) -> (metadata, types, tensors) and
// _core.save_gguf(path, metadata, tensors, types, progress). halfbyte/gguf_io.py
// wraps them (paths, progress bars, the GgufContents tuple).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/io/gguf_writer.hpp"
#include "model/linear.hpp"  // tensor_row_to_float: every type the loader reads, as fp32

namespace py = pybind11;
using halfbyte::io::GgmlType;
using halfbyte::io::GgufArray;
using halfbyte::io::GgufFile;
using halfbyte::io::GgufType;
using halfbyte::io::GgufValue;
using halfbyte_py::PyProgress;
using halfbyte_py::QTensor;

namespace {

[[noreturn]] void value_error(const std::string& m) { throw py::value_error(m); }

std::string type_of(const py::handle& o) { return py::str(py::type::of(o).attr("__name__")).cast<std::string>(); }

// ---- metadata: GGUF -> Python ------------------------------------------------------

// "u32", "string", "array[i32]"; an array of arrays is "array[array]".
std::string type_name(const GgufValue& v) {
  if (v.type != GgufType::ARRAY) return halfbyte::io::gguf_type_name(v.type);
  return std::string("array[") + halfbyte::io::gguf_type_name(v.as_array("").type) + "]";
}

// GGUF strings (values, keys, tensor names) are meant to be UTF-8; invalid bytes
// become surrogate escapes, which save_gguf encodes back to the same bytes.
py::str decode(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), py::ssize_t(s.size()), "surrogateescape");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

py::object to_python(const GgufValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return py::reinterpret_steal<py::object>(PyLong_FromUnsignedLongLong(*u));
  if (const auto* i = std::get_if<int64_t>(&v.v)) return py::reinterpret_steal<py::object>(PyLong_FromLongLong(*i));
  if (const auto* d = std::get_if<double>(&v.v)) return py::float_(*d);
  if (const auto* b = std::get_if<bool>(&v.v)) return py::bool_(*b);
  if (const auto* s = std::get_if<std::string>(&v.v)) return decode(*s);
  const GgufArray& a = v.as_array("");
  py::list out(a.items.size());
  for (size_t k = 0; k < a.items.size(); ++k) out[k] = to_python(a.items[k]);
  return std::move(out);
}

// ---- metadata: Python -> GGUF ------------------------------------------------------

struct Kinds {  // numpy scalar types, looked up once per call
  py::object np_bool, np_integer, np_floating, np_generic, ndarray;
  Kinds() {
    const py::module_ np = py::module_::import("numpy");
    np_bool = np.attr("bool_");
    np_integer = np.attr("integer");
    np_floating = np.attr("floating");
    np_generic = np.attr("generic");
    ndarray = np.attr("ndarray");
  }
  // The GGUF type of a numpy scalar's or 1-D array's dtype ("" if none or not numpy).
  std::string numpy_gguf_type(const py::handle& o) const {
    if (py::isinstance(o, ndarray) ? o.attr("ndim").cast<int>() != 1 : !py::isinstance(o, np_generic)) return "";
    const std::string name = py::str(o.attr("dtype").attr("name")).cast<std::string>();
    static const char* const map[][2] = {{"bool", "bool"},   {"int8", "i8"},     {"uint8", "u8"},
                                         {"int16", "i16"},   {"uint16", "u16"},  {"int32", "i32"},
                                         {"uint32", "u32"},  {"int64", "i64"},   {"uint64", "u64"},
                                         {"float16", "f32"}, {"float32", "f32"}, {"float64", "f64"}};
    for (const auto& m : map)
      if (name == m[0]) return m[1];
    return "";
  }
  bool is_bool(const py::handle& o) const { return PyBool_Check(o.ptr()) || py::isinstance(o, np_bool); }
  bool is_int(const py::handle& o) const {
    return (PyLong_Check(o.ptr()) && !PyBool_Check(o.ptr())) || py::isinstance(o, np_integer);
  }
  bool is_float(const py::handle& o) const { return PyFloat_Check(o.ptr()) || py::isinstance(o, np_floating); }
  bool is_str(const py::handle& o) const { return PyUnicode_Check(o.ptr()) || PyBytes_Check(o.ptr()); }
  // list, tuple or 1-D ndarray, as a list
  bool as_list(const py::handle& o, py::list* out) const {
    if (PyList_Check(o.ptr()) || PyTuple_Check(o.ptr())) {
      *out = py::reinterpret_steal<py::list>(PySequence_List(o.ptr()));
      if (!*out) throw py::error_already_set();
      return true;
    }
    if (py::isinstance(o, ndarray) && o.attr("ndim").cast<int>() == 1) {
      *out = o.attr("tolist")();
      return true;
    }
    return false;
  }
};

bool scalar_type(const std::string& s, GgufType* t) {
  static const char* const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                      "bool", "string", "", "u64", "i64", "f64"};
  for (uint32_t k = 0; k < std::size(names); ++k)
    if (k != uint32_t(GgufType::ARRAY) && s == names[k]) {
      *t = GgufType(k);
      return true;
    }
  return false;
}

// A type name as load_gguf reports it: a scalar name, "array[<scalar>]" or
// "array[array]". `elem` gets the element type name of an array ("" if none given).
GgufType parse_type(const std::string& key, const std::string& name, std::string* elem) {
  GgufType t;
  if (scalar_type(name, &t)) return t;
  if (name.rfind("array[", 0) == 0 && name.size() > 7 && name.back() == ']') {
    *elem = name.substr(6, name.size() - 7);
    if (*elem == "array" || scalar_type(*elem, &t)) return GgufType::ARRAY;
  }
  value_error("save_gguf: types['" + key + "'] = '" + name +
              "' is not a GGUF type (u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, bool, string, "
              "array[<one of those>] or array[array])");
}

GgufValue from_python(const Kinds& k, const std::string& key, const py::handle& o, const std::string& type);

// Integers keep their sign: int64 if they fit, else uint64 (the writer checks the range).
GgufValue int_value(GgufType t, const std::string& key, const py::handle& o) {
  const py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(o.ptr()));
  if (!idx) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
  if (overflow == 0) return GgufValue{t, int64_t(v)};
  if (overflow > 0) {
    const unsigned long long u = PyLong_AsUnsignedLongLong(idx.ptr());
    if (!PyErr_Occurred()) return GgufValue{t, uint64_t(u)};
    PyErr_Clear();
  }
  value_error("save_gguf: metadata '" + key + "': " + py::str(o).cast<std::string>() +
              " does not fit in 64 bits");
}

std::string as_bytes(const py::handle& o) {
  if (PyBytes_Check(o.ptr())) return py::bytes(py::reinterpret_borrow<py::bytes>(o)).cast<std::string>();
  PyObject* b = PyUnicode_AsEncodedString(o.ptr(), "utf-8", "surrogateescape");
  if (!b) throw py::error_already_set();
  return py::reinterpret_steal<py::bytes>(b).cast<std::string>();
}

// The element type of a list with no type given: bool, i32 / i64 / u64 (the
// smallest that holds every item), f32 if any item is a float, string, or array.
std::string infer_items(const Kinds& k, const std::string& key, const py::list& items) {
  bool any_bool = false, any_int = false, any_float = false, any_str = false, any_list = false;
  bool fit32 = true, fit64 = true;
  py::list inner;
  for (const py::handle& it : items) {
    if (k.is_bool(it)) any_bool = true;
    else if (k.is_int(it)) {
      any_int = true;
      const GgufValue v = int_value(GgufType::I64, key, it);
      if (const auto* i = std::get_if<int64_t>(&v.v)) fit32 = fit32 && *i >= INT32_MIN && *i <= INT32_MAX;
      else fit32 = fit64 = false;
    } else if (k.is_float(it)) any_float = true;
    else if (k.is_str(it)) any_str = true;
    else if (k.as_list(it, &inner)) any_list = true;
    else value_error("save_gguf: metadata '" + key + "': a list item is " + type_of(it) +
                     " (expected int, float, bool, str or list)");
  }
  const int kinds = int(any_bool) + int(any_int || any_float) + int(any_str) + int(any_list);
  if (kinds > 1)
    value_error("save_gguf: metadata '" + key + "': a list mixes bools, numbers, strings and lists; "
                "GGUF arrays have one element type");
  if (any_bool) return "bool";
  if (any_float) return "f32";
  if (any_int) return fit32 ? "i32" : fit64 ? "i64" : "u64";
  if (any_str) return "string";
  if (any_list) return "array";
  return "i32";  // an empty list
}

GgufValue from_python(const Kinds& k, const std::string& key, const py::handle& o, const std::string& type) {
  py::list items;
  std::string t = type;
  if (t.empty()) {  // infer
    const std::string np_type = k.numpy_gguf_type(o);
    if (!np_type.empty()) t = py::isinstance(o, k.ndarray) ? "array[" + np_type + "]" : np_type;
    else if (k.is_bool(o)) t = "bool";
    else if (k.is_int(o)) {
      const GgufValue v = int_value(GgufType::I64, key, o);
      const auto* i = std::get_if<int64_t>(&v.v);
      t = !i ? "u64" : (*i >= INT32_MIN && *i <= INT32_MAX) ? "i32" : "i64";
    } else if (k.is_float(o)) t = "f32";
    else if (k.is_str(o)) t = "string";
    else if (k.as_list(o, &items)) t = "array[" + infer_items(k, key, items) + "]";
    else
      value_error("save_gguf: metadata '" + key + "' is " + type_of(o) +
                  "; expected int, float, bool, str or a list of them");
  }
  std::string elem;
  const GgufType gt = t == "array" ? GgufType::ARRAY : parse_type(key, t, &elem);
  auto expect = [&](bool ok, const char* what) {
    if (!ok) value_error("save_gguf: metadata '" + key + "' is to be " + t + " but is " + type_of(o) + ", expected " + what);
  };
  switch (gt) {
    case GgufType::BOOL:
      expect(k.is_bool(o), "a bool");
      return GgufValue{gt, bool(PyObject_IsTrue(o.ptr()) == 1)};
    case GgufType::F32:
    case GgufType::F64:
      expect(k.is_float(o) || k.is_int(o), "a number");
    {
      const double d = PyFloat_AsDouble(o.ptr());
      if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
      return GgufValue{gt, d};
    }
    case GgufType::STRING:
      expect(k.is_str(o), "a str");
      return GgufValue{gt, as_bytes(o)};
    case GgufType::ARRAY: {
      expect(k.as_list(o, &items), "a list");
      if (elem.empty() || elem == "array") elem = infer_items(k, key, items);
      auto a = std::make_shared<GgufArray>();
      std::string dummy;
      a->type = elem == "array" ? GgufType::ARRAY : parse_type(key, elem, &dummy);
      a->items.reserve(items.size());
      // Items of an array of arrays each get their own (inferred) element type.
      for (const py::handle& it : items) a->items.push_back(from_python(k, key, it, elem == "array" ? "" : elem));
      for (const GgufValue& it : a->items)
        if (it.type != a->type) value_error("save_gguf: metadata '" + key + "': an item of array[" + elem + "] is not " + elem);
      return GgufValue{gt, std::move(a)};
    }
    default:  // the integer types
      expect(k.is_int(o), "an int");
      return int_value(gt, key, o);
  }
}

// ---- tensors -----------------------------------------------------------------------

bool numpy_type(const py::dtype& d, GgmlType* t) {
  const std::pair<py::dtype, GgmlType> known[] = {
      {py::dtype::of<float>(), GgmlType::F32},     {py::dtype("float16"), GgmlType::F16},
      {py::dtype::of<double>(), GgmlType::F64},    {py::dtype::of<int8_t>(), GgmlType::I8},
      {py::dtype::of<int16_t>(), GgmlType::I16},   {py::dtype::of<int32_t>(), GgmlType::I32},
      {py::dtype::of<int64_t>(), GgmlType::I64}};
  for (const auto& [dt, gt] : known)
    if (d.equal(dt)) {
      *t = gt;
      return true;
    }
  return false;
}

// The numpy dtype of a tensor type numpy has (else null).
const char* plain_dtype(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return "float32";
    case GgmlType::F16: return "float16";
    case GgmlType::F64: return "float64";
    case GgmlType::I8: return "int8";
    case GgmlType::I16: return "int16";
    case GgmlType::I32: return "int32";
    case GgmlType::I64: return "int64";
    default: return nullptr;
  }
}

// The numpy array for a plain tensor: a read-only view of the mapped file kept
// alive by `owner`, or a copy if the data is not aligned for its dtype.
py::array view_or_copy(const py::dtype& dt, const std::vector<py::ssize_t>& shape, const uint8_t* data, size_t nbytes,
                       const py::object& owner) {
  if (reinterpret_cast<uintptr_t>(data) % size_t(dt.itemsize()) == 0) {
    py::array a(dt, shape, {}, data, owner);
    a.attr("setflags")(py::arg("write") = false);
    return a;
  }
  py::array a(dt, shape);
  std::memcpy(a.mutable_data(), data, nbytes);
  return a;
}

py::tuple load_gguf(const std::string& path, const py::object& progress) {
  std::shared_ptr<GgufFile> f;
  {
    py::gil_scoped_release nogil;
    f = std::make_shared<GgufFile>(GgufFile::open(path));
  }
  py::dict metadata, types, tensors;
  for (const auto& [key, v] : f->metadata()) {
    metadata[decode(key)] = to_python(v);
    types[decode(key)] = type_name(v);
  }
  // The Python dicts hold the values now: free the parsed copies (vocabularies: MBs).
  std::vector<std::string> keys;
  for (const auto& kv : f->metadata()) keys.push_back(kv.first);
  for (const auto& key : keys) f->erase(key);

  // One owner object for every view: the file stays mapped while any view lives.
  const py::capsule owner(new std::shared_ptr<GgufFile>(f),
                          [](void* p) { delete static_cast<std::shared_ptr<GgufFile>*>(p); });
  PyProgress report(progress);
  const size_t n = f->tensors().size();
  for (size_t k = 0; k < n; ++k) {
    const auto& t = f->tensors()[k];
    std::vector<py::ssize_t> shape(t.ne.rbegin(), t.ne.rend());
    const int64_t cols = t.ne[0], rows = t.numel() / cols;
    halfbyte::quant::Format fmt;
    const char* dtype = plain_dtype(t.type);
    py::object value;
    if (halfbyte::model::native_format(t.type, &fmt)) {
      std::shared_ptr<QTensor> q;
      {
        py::gil_scoped_release nogil;
        q = std::make_shared<QTensor>(halfbyte::quant::QMatrix::from_bytes(fmt, rows, cols, f->data(t), t.nbytes));
      }
      value = py::cast(q);
    } else if (dtype) {
      value = view_or_copy(py::dtype(dtype), shape, f->data(t), size_t(t.nbytes), owner);
    } else {  // bf16, q5_x, k-quants: dequantized to a float32 copy
      py::array_t<float> a(shape);
      float* out = a.mutable_data();
      {
        py::gil_scoped_release nogil;
        for (int64_t r = 0; r < rows; ++r) halfbyte::model::tensor_row_to_float(*f, t, r, out + r * cols);
      }
      value = std::move(a);
    }
    tensors[decode(t.name)] = value;
    if (!report.call(float(k + 1) / float(n))) {
      report.rethrow_if_failed();
      throw halfbyte::Error(halfbyte::ErrorKind::Runtime, path + ": load_gguf cancelled");
    }
  }
  return py::make_tuple(metadata, types, tensors);
}

void save_gguf(const std::string& path, const py::dict& metadata, const py::dict& tensors, const py::object& types,
               const py::object& progress) {
  const Kinds kinds;
  halfbyte::io::GgufWriter w;
  py::dict type_of_key;
  if (!types.is_none()) {
    if (!PyDict_Check(types.ptr())) value_error("save_gguf: types must be a dict of str -> type name, got " + type_of(types));
    type_of_key = py::reinterpret_borrow<py::dict>(types);
  }
  for (const auto& [k, v] : metadata) {
    if (!PyUnicode_Check(k.ptr())) value_error("save_gguf: metadata keys must be str, got " + type_of(k) + " " + py::repr(k).cast<std::string>());
    const std::string key = as_bytes(k);
    std::string type;
    if (type_of_key.contains(k)) {
      const py::object tn = type_of_key[k];
      if (!PyUnicode_Check(tn.ptr())) value_error("save_gguf: types['" + key + "'] must be a str, got " + type_of(tn));
      type = tn.cast<std::string>();
    }
    w.set(key, from_python(kinds, key, v, type));
  }

  std::vector<py::object> keep;  // the arrays and tensors being written, alive until the end
  for (const auto& [k, v] : tensors) {
    if (!PyUnicode_Check(k.ptr())) value_error("save_gguf: tensor names must be str, got " + type_of(k) + " " + py::repr(k).cast<std::string>());
    const std::string name = as_bytes(k);
    const std::string at = "save_gguf: tensors['" + name + "']";
    if (py::isinstance<QTensor>(v)) {
      const QTensor& q = v.cast<const QTensor&>();
      GgmlType gt;
      switch (q.format().kind) {
        case halfbyte::quant::Kind::Q4_0: gt = GgmlType::Q4_0; break;
        case halfbyte::quant::Kind::Q4_1: gt = GgmlType::Q4_1; break;
        case halfbyte::quant::Kind::Q8_0: gt = GgmlType::Q8_0; break;
        default: value_error(at + " is a " + q.format().name() + " QTensor; GGUF has q4_0, q4_1 and q8_0 only");
      }
      if (q.rows() == 0) value_error(at + " has 0 rows; GGUF tensors have no empty dimensions");
      w.add_tensor(name, {q.cols(), q.rows()}, gt, q.data(), q.nbytes());
      keep.push_back(py::reinterpret_borrow<py::object>(v));
      continue;
    }
    if (!py::isinstance<py::array>(v)) value_error(at + " is " + type_of(v) + "; expected a numpy array or a QTensor");
    py::array a = py::reinterpret_borrow<py::array>(v);
    GgmlType gt;
    if (!numpy_type(a.dtype(), &gt))
      value_error(at + " has dtype " + py::str(a.dtype()).cast<std::string>() +
                  "; expected float32, float16, float64, int8, int16, int32 or int64 (native byte order)");
    if (a.ndim() < 1 || a.ndim() > 4)
      value_error(at + " has " + std::to_string(a.ndim()) + " dimensions; GGUF tensors have 1 to 4");
    std::vector<int64_t> ne;
    for (py::ssize_t d = a.ndim() - 1; d >= 0; --d) {
      if (a.shape(d) == 0) value_error(at + " has an empty dimension; GGUF tensors have none");
      ne.push_back(int64_t(a.shape(d)));
    }
    a = py::array::ensure(a, py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_);  // copy if strided
    if (!a) throw py::error_already_set();
    w.add_tensor(name, ne, gt, a.data(), size_t(a.nbytes()));
    keep.push_back(a);
  }
  PyProgress report(progress);
  try {
    py::gil_scoped_release nogil;
    w.write(path, report.function());
  } catch (const halfbyte::Error&) {
    report.rethrow_if_failed();
    throw;
  }
}

}  // namespace

void bind_gguf(py::module_& m) {
  m.def("load_gguf", &load_gguf, py::arg("path"), py::arg("progress") = py::none(),
        "(metadata, types, tensors) of a GGUF file; use halfbyte.load_gguf().");
  m.def("save_gguf", &save_gguf, py::arg("path"), py::arg("metadata"), py::arg("tensors"),
        py::arg("types") = py::none(), py::arg("progress") = py::none(),
        "Write a GGUF v3 file; use halfbyte.save_gguf().");
}
