// QMatrix: an owning rows x cols matrix of quantized blocks, each row quantized
// along its columns (the GGUF / ONNX convention for weights W[N, K]).
#pragma once

#include <atomic>
#include <cstring>
#include <exception>
#include <type_traits>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/core/tensor.hpp"
#include "halfbyte/quant/format.hpp"
#include "halfbyte/quant/quantize.hpp"

namespace halfbyte::quant {

class QMatrix {
 public:
  QMatrix() = default;
  // Uninitialised storage for rows x cols in format f.
  QMatrix(Format f, int64_t rows, int64_t cols)
      : format_(f), rows_(check_rows(rows)), cols_(cols), row_bytes_(quant::row_bytes(f, cols)),
        data_(checked_total(rows, row_bytes_)) {}

  // Copies raw block bytes (GGUF layout, rows back to back). Throws if the byte
  // count does not match rows x row_bytes(f, cols).
  static QMatrix from_bytes(Format f, int64_t rows, int64_t cols, const void* bytes, size_t nbytes) {
    const size_t rb = quant::row_bytes(f, cols);
    // Check the size before allocating: a hostile shape must not allocate.
    if (rows < 0 || (rows > 0 && rb > SIZE_MAX / size_t(rows)) || nbytes != size_t(rows) * rb)
      throw_invalid("QMatrix::from_bytes: ", nbytes, " bytes given, ", f.name(), " [", rows, ", ",
                    cols, "] needs ", rows, " x ", rb);
    QMatrix q(f, rows, cols);
    if (nbytes) std::memcpy(q.data(), bytes, nbytes);
    return q;
  }

  const Format& format() const noexcept { return format_; }
  int64_t rows() const noexcept { return rows_; }
  int64_t cols() const noexcept { return cols_; }
  size_t row_bytes() const noexcept { return row_bytes_; }
  size_t nbytes() const noexcept { return data_.size(); }
  uint8_t* data() noexcept { return data_.data(); }
  const uint8_t* data() const noexcept { return data_.data(); }
  uint8_t* row(int64_t i) noexcept { return data_.data() + size_t(i) * row_bytes_; }
  const uint8_t* row(int64_t i) const noexcept { return data_.data() + size_t(i) * row_bytes_; }

 private:
  static int64_t check_rows(int64_t rows) {
    if (rows < 0) throw_invalid("QMatrix: rows must be >= 0, got ", rows);
    return rows;
  }
  static size_t checked_total(int64_t rows, size_t row_bytes) {
    if (rows > 0 && row_bytes > SIZE_MAX / size_t(rows))
      throw_invalid("QMatrix: ", rows, " rows of ", row_bytes, " bytes overflow size_t");
    return size_t(rows) * row_bytes;
  }

  Format format_{};
  int64_t rows_ = 0, cols_ = 0;
  size_t row_bytes_ = 0;
  Buffer<uint8_t> data_;
};

// Quantizes a 2-D view (any strides) of float, f16 or bf16 row by row. Rows run in
// parallel when OpenMP is enabled; the result does not depend on the thread count.
// opts.importance, if given, has a.dim(1) entries.
template <class T>
QMatrix quantize(TensorView<const T> a, const Format& f, const QuantizeOptions& opts = {}) {
  if (a.ndim() != 2) throw_invalid("quantize: expected a 2-D matrix, got rank ", a.ndim());
  const int64_t rows = a.dim(0), cols = a.dim(1);
  QMatrix q(f, rows, cols);
  const bool packed = a.stride(1) == 1;
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // the first failure, reported after the loop
  auto fail = [&](std::exception_ptr e) {
#ifdef _OPENMP
#pragma omp critical(halfbyte_quantize_error)
#endif
    if (!failed.exchange(true)) error = e;
  };
#ifdef _OPENMP
#pragma omp parallel
#endif
  {
    std::vector<T> tmp(packed ? 0 : size_t(cols));
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 16)
#endif
    for (int64_t i = 0; i < rows; ++i) {
      if (failed.load(std::memory_order_relaxed)) continue;
      try {
        const T* src = a.row(i);
        if (!packed) {
          for (int64_t j = 0; j < cols; ++j) tmp[size_t(j)] = a(i, j);
          src = tmp.data();
        }
        quantize_row(f, src, cols, q.row(i), opts);
      } catch (const Error& e) {
        fail(std::make_exception_ptr(Error(e.kind(), detail::concat(e.what(), " (row ", i, ")"))));
      } catch (...) {
        fail(std::current_exception());
      }
    }
  }
  if (error) std::rethrow_exception(error);
  return q;
}

// Dequantizes into a rows x cols float view (any strides).
inline void dequantize(const QMatrix& q, TensorView<float> out) {
  if (out.ndim() != 2 || out.dim(0) != q.rows() || out.dim(1) != q.cols())
    throw_invalid("dequantize: output must be [", q.rows(), ", ", q.cols(), "]");
  const int64_t rows = q.rows(), cols = q.cols();
  const bool packed = out.stride(1) == 1;
#ifdef _OPENMP
#pragma omp parallel
#endif
  {
    std::vector<float> tmp(packed ? 0 : size_t(cols));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t i = 0; i < rows; ++i) {
      float* dst = packed ? out.row(i) : tmp.data();
      dequantize_row(q.format(), q.row(i), cols, dst);
      if (!packed)
        for (int64_t j = 0; j < cols; ++j) out(i, j) = tmp[size_t(j)];
    }
  }
}

}  // namespace halfbyte::quant
