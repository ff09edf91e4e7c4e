// TensorView: a non-owning, strided view of up to 4 dimensions.
// Buffer<T>: an owning, 64-byte aligned array (for SIMD loads and cache lines).
//
// Strides are in elements, not bytes. Shapes are row-major by default: the last
// dimension is the fastest. A view never allocates or frees.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "halfbyte/core/dtype.hpp"
#include "halfbyte/core/error.hpp"

namespace halfbyte {

inline constexpr int kMaxDims = 4;
inline constexpr size_t kAlignment = 64;
inline constexpr size_t kHugePage = size_t(2) << 20;

template <class T>
class TensorView {
 public:
  using element_type = T;

  TensorView() = default;

  // Contiguous row-major view.
  TensorView(T* data, std::initializer_list<int64_t> shape) : data_(data) {
    set_shape(shape.begin(), int(shape.size()));
    int64_t s = 1;
    for (int i = ndim_ - 1; i >= 0; --i) {
      strides_[i] = s;
      s *= shape_[i];
    }
  }

  // Explicit shape and strides (in elements).
  TensorView(T* data, std::initializer_list<int64_t> shape, std::initializer_list<int64_t> strides)
      : data_(data) {
    set_shape(shape.begin(), int(shape.size()));
    if (strides.size() != shape.size())
      throw_invalid("TensorView: ", strides.size(), " strides given for ", shape.size(),
                    " dimensions");
    int i = 0;
    for (int64_t s : strides) strides_[i++] = s;
  }

  // A view of const T from a view of T.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  TensorView(const TensorView<U>& other)  // NOLINT: implicit on purpose
      : data_(other.data()), ndim_(other.ndim()) {
    for (int i = 0; i < ndim_; ++i) {
      shape_[i] = other.dim(i);
      strides_[i] = other.stride(i);
    }
  }

  T* data() const noexcept { return data_; }
  int ndim() const noexcept { return ndim_; }
  int64_t dim(int i) const noexcept { return shape_[size_t(i)]; }
  int64_t stride(int i) const noexcept { return strides_[size_t(i)]; }
  static constexpr DType dtype() noexcept { return dtype_of_v<T>; }

  int64_t numel() const noexcept {
    int64_t n = 1;
    for (int i = 0; i < ndim_; ++i) n *= shape_[i];
    return n;
  }

  // Row-major contiguous (strides equal the packed strides; size-1 dims ignored).
  bool is_contiguous() const noexcept {
    int64_t s = 1;
    for (int i = ndim_ - 1; i >= 0; --i) {
      if (shape_[i] != 1 && strides_[i] != s) return false;
      s *= shape_[i];
    }
    return true;
  }

  // Unchecked element access (the caller has validated the shape).
  T& operator()(int64_t i) const noexcept { return data_[i * strides_[0]]; }
  T& operator()(int64_t i, int64_t j) const noexcept {
    return data_[i * strides_[0] + j * strides_[1]];
  }
  T& operator()(int64_t i, int64_t j, int64_t k) const noexcept {
    return data_[i * strides_[0] + j * strides_[1] + k * strides_[2]];
  }

  // Pointer to row i of a 2-D view (valid for contiguous rows: stride(1) == 1).
  T* row(int64_t i) const noexcept { return data_ + i * strides_[0]; }

 private:
  void set_shape(const int64_t* dims, int n) {
    if (n < 1 || n > kMaxDims)
      throw_invalid("TensorView: rank ", n, " is not supported (1..", kMaxDims, ")");
    ndim_ = n;
    for (int i = 0; i < n; ++i) {
      if (dims[i] < 0) throw_invalid("TensorView: dimension ", i, " is negative (", dims[i], ")");
      shape_[size_t(i)] = dims[i];
    }
  }

  T* data_ = nullptr;
  int ndim_ = 0;
  std::array<int64_t, kMaxDims> shape_{};
  std::array<int64_t, kMaxDims> strides_{};
};

// Owning, 64-byte aligned, uninitialised storage for trivially copyable T.
template <class T>
class Buffer {
  static_assert(std::is_trivially_copyable_v<T>, "Buffer holds trivially copyable types only");

 public:
  Buffer() = default;
  explicit Buffer(size_t n) : size_(n) {
    if (n == 0) return;
    if (n > (SIZE_MAX - kAlignment) / sizeof(T))
      throw_invalid("Buffer: ", n, " elements of ", sizeof(T), " bytes overflow size_t");
    // Large buffers (weights) start on a 2 MiB boundary and are offered
    // transparent huge pages: streaming hundreds of MB through 4 KiB pages costs
    // TLB misses. Their size is not rounded up to 2 MiB: a model holds ~100 such
    // buffers, and huge-page tails would add ~1 MB of resident memory each.
    const size_t bytes = (n * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
    const size_t align = bytes >= kHugePage ? kHugePage : kAlignment;
    void* p = nullptr;
    if (::posix_memalign(&p, align, bytes) != 0) throw std::bad_alloc();
    data_ = static_cast<T*>(p);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHugePage) ::madvise(data_, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~Buffer() { std::free(data_); }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  size_t nbytes() const noexcept { return size_ * sizeof(T); }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](size_t i) noexcept { return data_[i]; }
  const T& operator[](size_t i) const noexcept { return data_[i]; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }

  TensorView<T> view(std::initializer_list<int64_t> shape) {
    TensorView<T> v(data_, shape);
    if (size_t(v.numel()) != size_)
      throw_invalid("Buffer::view: shape has ", v.numel(), " elements, buffer has ", size_);
    return v;
  }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace halfbyte
