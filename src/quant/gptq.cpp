// GPTQ on ggml block formats (see gptq.hpp).
#include "quant/gptq.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "halfbyte/core/error.hpp"
#include "quant/row_codec.hpp"

namespace halfbyte::quant {

namespace {
using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;
using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapF = Eigen::Map<RowMatF, 0, Eigen::OuterStride<>>;
using CMapF = Eigen::Map<const RowMatF, 0, Eigen::OuterStride<>>;
}  // namespace

GptqFactor gptq_factor(const float* cov, int64_t n, double damp) {
  if (n <= 0) throw_invalid("gptq: the matrix has ", n, " columns");
  MatD h(n, n);
  double mean_diag = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) h(i, j) = double(cov[i * n + j]);
    const double d = h(i, i);
    if (!(d >= 0.0) || !std::isfinite(d))
      throw_invalid("gptq: the covariance has a negative or non-finite diagonal entry at column ", i);
    mean_diag += d;
  }
  mean_diag /= double(n);
  if (!(mean_diag > 0.0)) throw_invalid("gptq: the covariance is all zero on its diagonal (no statistics)");
  h = 0.5 * (h + h.transpose());  // symmetric whatever rounding the sums had
  for (int attempt = 0; attempt < 4; ++attempt, damp *= 10.0) {
    MatD hd = h;
    hd.diagonal().array() += damp * mean_diag;
    // U with U^T U = hd^-1 means hd = V V^T with V = U^-1 upper triangular. With J
    // the reversal permutation, J hd J = (J V J)(J V J)^T and J V J is lower: the
    // Cholesky factor of the reversed matrix. So U = J L^-1 J: one factorisation and
    // one triangular inverse, instead of inverting hd and factorising the inverse.
    const MatD rev = hd.reverse();
    Eigen::LLT<MatD> llt(rev);
    if (llt.info() != Eigen::Success) continue;
    const MatD linv = llt.matrixL().solve(MatD::Identity(n, n));
    const MatD u = linv.reverse();
    if (!u.allFinite() || !(u.diagonal().array() > 0.0).all()) continue;
    GptqFactor f;
    f.n = n;
    f.u.resize(size_t(n * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) f.u[size_t(i * n + j)] = float(u(i, j));
    return f;
  }
  throw_invalid("gptq: the covariance stays singular with damping up to ", damp / 10.0, " x its mean diagonal");
}

void gptq_rows(io::GgmlType t, const GptqFactor& f, float* w, int64_t rows, const float* importance, uint8_t* out,
               size_t row_bytes) {
  if (!has_element_grid(t)) throw_invalid("gptq: type ", io::ggml_type_info(t).name, " is not a block format");
  const int64_t n = f.n;
  const auto& ti = io::ggml_type_info(t);
  const int64_t B = ti.block;
  if (n % B != 0) throw_invalid("gptq: rows of ", n, " are not a whole number of ", ti.name, " blocks");
  const CMapF U(f.u.data(), n, n, Eigen::OuterStride<>(n));
  MapF W(w, rows, n, Eigen::OuterStride<>(n));
  RowMatF err(rows, B);
  for (int64_t b = 0; b < n; b += B) {
    const size_t blk_off = size_t(b / B) * size_t(ti.block_bytes);
    // The block's scales, fitted to the weights as they stand now.
    for (int64_t r = 0; r < rows; ++r)
      encode_row(t, w + r * n + b, B, importance ? importance + b : nullptr, out + size_t(r) * row_bytes + blk_off);
    for (int64_t jj = 0; jj < B; ++jj) {
      const int64_t j = b + jj;
      const float* uj = f.u.data() + j * n;
      const float inv_d = 1.0f / uj[j];
      for (int64_t r = 0; r < rows; ++r) {
        uint8_t* blk = out + size_t(r) * row_bytes + blk_off;
        float* wr = w + r * n;
        const ElementGrid g = element_grid(t, blk, int(jj));
        const int q = g.nearest(wr[j]);
        set_code(t, blk, int(jj), q);
        const float e = (wr[j] - g.value(q)) * inv_d;
        err(r, jj) = e;
        for (int64_t k = j + 1; k < b + B; ++k) wr[k] -= e * uj[k];
      }
    }
    if (b + B < n) W.rightCols(n - b - B).noalias() -= err * U.block(b, b + B, B, n - b - B);
  }
}

}  // namespace halfbyte::quant
