// Shared by the binding files: the QTensor type and the bridge that lets C++ code
// running without the GIL report progress to Python and notice Ctrl-C.
#pragma once

#include <pybind11/pybind11.h>

#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "halfbyte/halfbyte.hpp"

namespace halfbyte_py {

namespace py = pybind11;

// The Python QTensor: the quantized bytes, plus the kernels' packed copy made on
// first use by matmul() (thread-safe; costs as much memory again, freed with the
// tensor). Immutable after construction, which makes the read-only buffer export safe.
struct QTensor : halfbyte::quant::QMatrix {
  explicit QTensor(halfbyte::quant::QMatrix&& q) : QMatrix(std::move(q)) {}
  const halfbyte::ops::PackedMatrix& packed() const {
    std::call_once(pack_once, [&] {
      packed_ = std::make_unique<halfbyte::ops::PackedMatrix>(halfbyte::ops::PackedMatrix::pack(*this));
    });
    return *packed_;
  }

 private:
  mutable std::once_flag pack_once;
  mutable std::unique_ptr<halfbyte::ops::PackedMatrix> packed_;
};
using QTensorPtr = std::shared_ptr<QTensor>;

// True when called (with the GIL) on the interpreter's main thread, the only one
// where Python runs signal handlers.
inline bool on_main_thread() {
  const py::module_ threading = py::module_::import("threading");
  return threading.attr("current_thread")().is(threading.attr("main_thread")());
}

// A progress callback for C++ code that runs with the GIL released. Each call takes
// the GIL (only when there is something to do), runs Python's signal handlers on
// the main thread (Ctrl-C raises KeyboardInterrupt there) and calls the Python
// callable, if any, with the fraction done. A Python exception, or the callable
// returning False, makes the call return false (the C++ side then cancels); the
// exception is kept and rethrown by rethrow_if_failed() once the GIL is held again.
// Construct and destroy with the GIL held.
class PyProgress {
 public:
  explicit PyProgress(py::object callback = py::none())
      : cb_(std::move(callback)), main_(on_main_thread()) {}
  PyProgress(const PyProgress&) = delete;
  PyProgress& operator=(const PyProgress&) = delete;

  bool call(float fraction) {
    if (cb_.is_none() && !main_) return true;
    py::gil_scoped_acquire gil;
    try {
      if (main_ && PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (!cb_.is_none()) {
        const py::object r = cb_(fraction);
        if (!r.is_none()) {
          const int truth = PyObject_IsTrue(r.ptr());
          if (truth < 0) throw py::error_already_set();
          if (truth == 0) return false;
        }
      }
      return true;
    } catch (const py::error_already_set&) {
      error_ = std::current_exception();
      return false;
    }
  }
  std::function<bool(float)> function() {
    return [this](float fraction) { return call(fraction); };
  }
  bool failed() const noexcept { return bool(error_); }
  // Rethrows the kept Python exception, if any (call with the GIL held).
  void rethrow_if_failed() {
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  py::object cb_;
  bool main_;
  std::exception_ptr error_;
};

// Locks `mu` with the GIL released while waiting: a thread holding `mu` may need
// the GIL to finish (callbacks, building the result), so waiting for it with the
// GIL held would deadlock.
inline std::unique_lock<std::mutex> lock_without_gil(std::mutex& mu) {
  std::unique_lock<std::mutex> lock(mu, std::defer_lock);
  if (!lock.try_lock()) {
    py::gil_scoped_release nogil;
    lock.lock();
  }
  return lock;
}

}  // namespace halfbyte_py
