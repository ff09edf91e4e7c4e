// ops::matmul: shape checks, activation preparation, thread partitioning; the
// arithmetic is in the kernel table (kernels/).
#include "halfbyte/ops/matmul.hpp"

// Eigen runs inside halfbyte's own tasks (one panel of columns each): its own
// OpenMP threads would oversubscribe the cores.
#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>
#include <algorithm>
#include <type_traits>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "core/thread_pool.hpp"
#include "halfbyte/threads.hpp"
#include "kernel_table.hpp"

namespace halfbyte::ops {
namespace {

using kernels::ActBlock;

// Per calling thread, reused across calls: no allocation on the token path once
// the largest shape has been seen.
struct Scratch {
  std::vector<int8_t> qs;
  std::vector<int16_t> qs16;
  std::vector<ActBlock> meta;
  std::vector<float> xsum;
  std::vector<float> xs;  // x times MatmulOptions::act_scale
};
thread_local Scratch t_scratch;

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Row-group chunks per thread on the integer paths with M > 1 (taken dynamically).
constexpr int64_t kChunksPerThread = 4;

int threads_for(const MatmulOptions& o) {
  if (o.n_threads < 0 || o.n_threads > kMaxThreads)
    throw_invalid("matmul: n_threads must be in [0, ", kMaxThreads, "], got ", o.n_threads);
  return o.n_threads > 0 ? o.n_threads : num_threads();
}

// Runs body(part, nt) for the nt parts of the work, claimed by up to nt threads
// (inline when nt == 1). A part is a task, not a thread: a worker that has not
// woken by the time the others have claimed every part is not waited for.
template <class F>
void parallel(int nt, F&& body) {
  detail::parallel_tasks(nt, nt, [&](int64_t part, int) { body(int(part), nt); });
}

// MatmulOptions::prologue over all rows, for a path that reads x as a whole.
void run_prologue(const MatmulOptions& o, int64_t M, int nt) {
  if (!o.prologue || M == 0) return;
  if (nt > 1 && M >= nt) {
    parallel(nt, [&](int tid, int nthr) { o.prologue(M * tid / nthr, M * (tid + 1) / nthr); });
  } else {
    o.prologue(0, M);
  }
}

// Thread tid's share of G row groups x M rows: threads split the row groups (each
// reads its weights once, for all M rows); only when there are fewer groups than
// threads are the rows of x split.
kernels::GemmTask split(int64_t G, int64_t M, TensorView<float> y, int tid, int nthr) {
  kernels::GemmTask t{0, G, 0, M, y.data(), y.stride(0)};
  if (G >= nthr || M == 1) {
    t.g0 = G * tid / nthr;
    t.g1 = G * (tid + 1) / nthr;
  } else {
    t.m0 = M * tid / nthr;
    t.m1 = M * (tid + 1) / nthr;
  }
  return t;
}

void check_shapes(const char* what, TensorView<const float> x, int64_t n, int64_t k, TensorView<float> y) {
  if (x.ndim() != 2) throw_invalid(what, ": x must be 2-D [M, K], got rank ", x.ndim());
  if (y.ndim() != 2) throw_invalid(what, ": y must be 2-D [M, N], got rank ", y.ndim());
  if (x.dim(1) != k)
    throw_invalid(what, ": x has ", x.dim(1), " columns but W has K = ", k, " (W is [", n, ", ", k, "])");
  if (y.dim(0) != x.dim(0) || y.dim(1) != n)
    throw_invalid(what, ": y must be [", x.dim(0), ", ", n, "], got [", y.dim(0), ", ", y.dim(1), "]");
  if (x.dim(0) > 1 && x.stride(1) != 1) throw_invalid(what, ": x rows must be contiguous (stride(1) == 1)");
  if (x.stride(1) != 1 && x.dim(1) > 1) throw_invalid(what, ": x rows must be contiguous (stride(1) == 1)");
  if (y.stride(1) != 1 && y.dim(1) > 1) throw_invalid(what, ": y rows must be contiguous (stride(1) == 1)");
}

}  // namespace

namespace {

// The product; true if the kernel applied opts.bias and opts.activation as well.
bool product(TensorView<const float> x_in, const PackedMatrix& w, TensorView<float> y, const MatmulOptions& opts) {
  const int64_t M = x_in.dim(0), K = w.cols();
  const int nt = threads_for(opts);
  if (M == 0 || w.rows() == 0) {  // (nothing to apply anything to but the prologue)
    run_prologue(opts, M, nt);
    return true;
  }
  const kernels::KernelTable& kt = kernels::active();
  const kernels::Packed p = kernels::Packed::of(w);
  const int bf = p.bf16 ? 1 : 0;
  const int64_t G = (w.rows() + kRowGroup - 1) / kRowGroup;
  const int64_t nb = K / 32;

  auto task_for = [&](int tid, int nthr) { return split(G, M, y, tid, nthr); };

  const auto tile = kt.gemm_tile[p.family][bf];
  const int64_t min_rows = opts.tile_min_rows > 0 ? opts.tile_min_rows : kt.tile_min_rows;
  const bool on_tiles = tile && M >= min_rows && opts.precision != Precision::Float;
  Scratch& s = t_scratch;
  const bool asym = !on_tiles && opts.precision == Precision::Int8Asym && kt.quantize_act_asym &&
                    kt.gemm_int_asym[p.family][bf] != nullptr;
  // NoInt8 without tiles: the int16 path where the ISA has it, else the float path.
  const bool int16 = !on_tiles && opts.precision == Precision::NoInt8 && kt.gemm_i16[p.family][bf] != nullptr;
  const bool float_path = !on_tiles && !int16 && (opts.precision == Precision::Float || opts.precision == Precision::NoInt8);
  // act_scale: folded into the asymmetric quantization, else applied to a copy of x.
  const bool scaled_copy = opts.act_scale && !asym;
  // The prologue: on the threads that quantize the rows, where they do (integer
  // paths with several rows per thread, reading x itself), else first.
  const bool fused_prologue = opts.prologue && !on_tiles && !float_path && nt > 1 && M >= nt && !scaled_copy;
  if (!fused_prologue) run_prologue(opts, M, nt);
  TensorView<const float> x = x_in;
  if (scaled_copy) {
    float* xs = grow(s.xs, size_t(M * K));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) xs[m * K + k] = x_in(m, k) * opts.act_scale[k];
    x = TensorView<const float>(xs, {M, K});
  }
  if (float_path) {
    float* xsum = grow(s.xsum, size_t(M * nb));
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = x.data() + m * x.stride(0);
      for (int64_t b = 0; b < nb; ++b) {
        float acc = 0.0f;
        for (int k = 0; k < 32; ++k) acc += xr[b * 32 + k];
        xsum[m * nb + b] = acc;
      }
    }
    const kernels::ActF32 a{x.data(), x.stride(0), xsum};
    const auto fn = kt.gemm_float[p.family][bf];
    parallel(nt, [&](int tid, int nthr) {
      const auto t = task_for(tid, nthr);
      if (t.g0 < t.g1 && t.m0 < t.m1) fn(p, a, t);
    });
    return false;
  }

  // AMX: GEMMs of enough rows on bf16 tiles (fp32 activations, no int8 quantization).
  if (on_tiles) {
    const kernels::ActF32 a{x.data(), x.stride(0), nullptr};
    parallel(nt, [&](int tid, int nthr) {
      const auto t = task_for(tid, nthr);
      if (t.g0 < t.g1 && t.m0 < t.m1) tile(p, a, t);
    });
    return false;
  }

  // Integer paths: activations quantized per row, then the kernel; for large
  // batches the threads quantize their share of rows first.
  const auto run_quantized = [&](auto* qs, auto quantize, auto fn, bool fused) {
    const float* bias = fused ? opts.bias : nullptr;
    const bool gelu = fused && opts.activation == Activation::Gelu;
    ActBlock* meta = grow(s.meta, size_t(M * nb));
    const auto quantize_rows = [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) quantize(x.data() + m * x.stride(0), K, qs + m * K, meta + m * nb);
    };
    using Act = std::conditional_t<sizeof(*qs) == 1, kernels::ActQ8, kernels::ActQ16>;
    const Act a{qs, meta, K};
    if (nt == 1 || M < nt) {
      quantize_rows(0, M);
      parallel(nt, [&](int tid, int nthr) {
        auto t = task_for(tid, nthr);
        t.bias = bias;
        t.gelu = gelu;
        if (t.g0 < t.g1 && t.m0 < t.m1) fn(p, a, t);
      });
      return;
    }
    // Several rows: the rows are quantized in nt parts, then the row groups are
    // taken in chunks as threads finish (a thread that runs slower, such as one on
    // a busy core, takes fewer). A group's outputs come from one kernel call over
    // all of K, whoever runs it.
    parallel(nt, [&](int part, int parts) {
      const int64_t m0 = M * part / parts, m1 = M * (part + 1) / parts;
      if (fused_prologue && m0 < m1) opts.prologue(m0, m1);
      quantize_rows(m0, m1);
    });
    if (G < nt) {  // fewer groups than threads: the rows are split
      parallel(nt, [&](int part, int parts) {
        auto t = task_for(part, parts);
        t.bias = bias;
        t.gelu = gelu;
        if (t.m0 < t.m1) fn(p, a, t);
      });
      return;
    }
    const int64_t chunk = std::max<int64_t>(1, G / (int64_t(nt) * kChunksPerThread));
    detail::parallel_tasks((G + chunk - 1) / chunk, nt, [&](int64_t c, int) {
      const int64_t g0 = c * chunk;
      fn(p, a, kernels::GemmTask{g0, std::min(G, g0 + chunk), 0, M, y.data(), y.stride(0), bias, gelu});
    });
  };
  if (int16) {
    run_quantized(grow(s.qs16, size_t(M * K)), kt.quantize_act16, kt.gemm_i16[p.family][bf], false);
    return false;
  }
  if (asym) {
    run_quantized(
        grow(s.qs, size_t(M * K)),
        [&](const float* xr, int64_t k, int8_t* q, ActBlock* m) { kt.quantize_act_asym(xr, k, opts.act_scale, q, m); },
        kt.gemm_int_asym[p.family][bf], kt.asym_epilogue);
    return kt.asym_epilogue;
  }
  run_quantized(grow(s.qs, size_t(M * K)), kt.quantize_act, kt.gemm_int[p.family][bf], false);
  return false;
}

// y = activation(y + bias), rows split among the threads where there is enough work.
void epilogue(TensorView<float> y, const MatmulOptions& o, int nt) {
  if (!o.bias && o.activation == Activation::None) return;
  const int64_t M = y.dim(0), N = y.dim(1);
  const kernels::KernelTable& kt = kernels::active();
  const bool gelu = o.activation == Activation::Gelu;
  const bool par = nt > 1 && M > 1 && M * N * (gelu ? 10 : 1) >= 16384;
  detail::parallel_ranges(M, par ? nt : 1, nt, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      float* r = y.data() + m * y.stride(0);
      if (gelu) {
        kt.gelu(r, o.bias, N);
      } else {
        for (int64_t n = 0; n < N; ++n) r[n] += o.bias[n];
      }
    }
  });
}

}  // namespace

void matmul(TensorView<const float> x, const PackedMatrix& w, TensorView<float> y, const MatmulOptions& opts) {
  check_shapes("matmul", x, w.rows(), w.cols(), y);
  if (!product(x, w, y, opts)) epilogue(y, opts, threads_for(opts));
}

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
using Map = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;

// The prologue, then y[:, n0:n1] = x . w[n0:n1]^T per thread (panel(X, n0, n1, Y)
// computes it from W's rows), then the bias and activation.
template <class RowPanel>
void float_matmul(TensorView<const float> x, int64_t N, int64_t K, TensorView<float> y, const MatmulOptions& opts,
                  RowPanel&& panel) {
  const int64_t M = x.dim(0);
  const int nt = threads_for(opts);
  run_prologue(opts, M, nt);
  if (M == 0 || N == 0) return;
  const ConstMap X(x.data(), M, K, Eigen::OuterStride<>(std::max<int64_t>(x.stride(0), K)));
  parallel(nt, [&](int tid, int nthr) {
    const int64_t n0 = N * tid / nthr, n1 = N * (tid + 1) / nthr;
    if (n0 < n1) panel(X, n0, n1, Map(y.data() + n0, M, n1 - n0, Eigen::OuterStride<>(y.stride(0))));
  });
  epilogue(y, opts, nt);
}

template <class T>
constexpr kernels::DenseType dense_type() {
  return std::is_same_v<T, float> ? kernels::kDenseF32 : std::is_same_v<T, f16> ? kernels::kDenseF16 : kernels::kDenseBF16;
}

// A float-weight kernel (gemm_tile_dense or gemm_dense) over all of x and w: the
// prologue first, the row groups split among the threads, then the epilogue.
template <class T>
void run_dense(kernels::GemmDenseFn fn, TensorView<const float> x, TensorView<const T> w, TensorView<float> y,
               const MatmulOptions& opts) {
  const int64_t M = x.dim(0), N = w.dim(0);
  const int nt = threads_for(opts);
  run_prologue(opts, M, nt);
  if (M > 0 && N > 0) {
    const kernels::Dense d{w.data(), std::max<int64_t>(w.stride(0), w.dim(1)), N, w.dim(1)};
    const kernels::ActF32 a{x.data(), x.stride(0), nullptr};
    const int64_t G = (N + 15) / 16;
    parallel(nt, [&](int tid, int nthr) {
      const auto t = split(G, M, y, tid, nthr);
      if (t.g0 < t.g1 && t.m0 < t.m1) fn(d, a, t);
    });
  }
  epilogue(y, opts, nt);
}

// Float weights on a kernel: bf16 tiles (AMX) where the table has them, M reaches the
// crossover and the precision allows it (matmul.hpp), else the ISA's fp32 kernel
// where it has one; false: neither (Eigen's turn).
template <class T>
bool dense_on_kernel(TensorView<const float> x, TensorView<const T> w, TensorView<float> y, const MatmulOptions& opts) {
  constexpr kernels::DenseType type = dense_type<T>();
  const kernels::KernelTable& kt = kernels::active();
  const int64_t min_rows = opts.tile_min_rows > 0 ? opts.tile_min_rows : kt.tile_min_rows;
  const bool allowed = opts.precision == Precision::NoInt8 || (type != kernels::kDenseF32 && opts.precision != Precision::Float);
  if (kt.gemm_tile_dense[type] && allowed && x.dim(0) >= min_rows) {
    run_dense(kt.gemm_tile_dense[type], x, w, y, opts);
    return true;
  }
  if (!kt.gemm_dense[type]) return false;
  run_dense(kt.gemm_dense[type], x, w, y, opts);
  return true;
}

template <class T>
void check_dense(TensorView<const float> x, TensorView<const T> w, TensorView<float> y, const MatmulOptions& opts) {
  if (opts.act_scale)
    throw_invalid("matmul: act_scale (smoothing) is for quantized weights; scale float weights' columns instead");
  if (w.ndim() != 2) throw_invalid("matmul: W must be 2-D [N, K], got rank ", w.ndim());
  if (w.stride(1) != 1) throw_invalid("matmul: W rows must be contiguous (stride(1) == 1)");
  check_shapes("matmul", x, w.dim(0), w.dim(1), y);
}

// 16-bit weights: converted 64 rows at a time into a thread-local fp32 panel.
template <class T>
void half_matmul(TensorView<const float> x, TensorView<const T> w, TensorView<float> y, const MatmulOptions& opts) {
  check_dense(x, w, y, opts);
  if (dense_on_kernel(x, w, y, opts)) return;
  const int64_t K = w.dim(1);
  float_matmul(x, w.dim(0), K, y, opts, [&](const ConstMap& X, int64_t n0, int64_t n1, Map Y) {
    constexpr int64_t kPanel = 64;
    std::vector<float> buf(size_t(std::min(kPanel, n1 - n0) * K));
    for (int64_t a = n0; a < n1; a += kPanel) {
      const int64_t b = std::min(n1, a + kPanel);
      for (int64_t n = a; n < b; ++n)
        for (int64_t k = 0; k < K; ++k) buf[size_t((n - a) * K + k)] = w(n, k).to_float();
      const ConstMap W(buf.data(), b - a, K, Eigen::OuterStride<>(K));
      Y.middleCols(a - n0, b - a).noalias() = X * W.transpose();
    }
  });
}

}  // namespace

void matmul(TensorView<const float> x, TensorView<const float> w, TensorView<float> y, const MatmulOptions& opts) {
  check_dense(x, w, y, opts);
  if (dense_on_kernel(x, w, y, opts)) return;
  const int64_t K = w.dim(1);
  float_matmul(x, w.dim(0), K, y, opts, [&](const ConstMap& X, int64_t n0, int64_t n1, Map Y) {
    const ConstMap W(w.row(n0), n1 - n0, K, Eigen::OuterStride<>(std::max<int64_t>(w.stride(0), K)));
    Y.noalias() = X * W.transpose();
  });
}

void matmul(TensorView<const float> x, TensorView<const f16> w, TensorView<float> y, const MatmulOptions& opts) {
  half_matmul(x, w, y, opts);
}

void matmul(TensorView<const float> x, TensorView<const bf16> w, TensorView<float> y, const MatmulOptions& opts) {
  half_matmul(x, w, y, opts);
}

}  // namespace halfbyte::ops
