// A linear layer y = x . W^T (+ b) whose weights are quantized (packed for the
// kernels) or float. Built from GGUF tensors, several of which may be fused
// (stacked along the output dimension) when they share a type.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "halfbyte/io/gguf.hpp"
#include "halfbyte/ops/matmul.hpp"
#include "halfbyte/ops/packed.hpp"

namespace halfbyte::model {

class Linear {
 public:
  Linear() = default;
  // Stacks the given tensors (each [rows_i, n_in] in GGUF's ne = {n_in, rows_i})
  // into one layer. Quantized tensors of one native type (q4_0, q4_1, q8_0) are
  // repacked; other ggml block types (q5_x, k-quants) are dequantized and
  // re-quantized to q8_0; f32, f16 and bf16 are quantized to `float_to` if given
  // (error-minimising scale search), else kept as fp32.
  // act_max [n_in] (with float_to, for float tensors): an estimate of each input
  // channel's largest |x|; the layer is then smoothed before it is quantized
  // (SmoothQuant, alpha 1/2): column j of W times s_j = sqrt(act_max_j / max_i |W_ij|)
  // (normalised to a median of 1), and forward() hands 1 / s to ops::matmul as
  // MatmulOptions::act_scale. Ignored for weights that are quantized in the file.
  static Linear from_gguf(const io::GgufFile& f, const std::vector<const io::GgufTensorInfo*>& parts,
                          int64_t n_in, const quant::Format* float_to = nullptr, const float* act_max = nullptr);

  int64_t n_out() const noexcept { return n_out_; }
  int64_t n_in() const noexcept { return n_in_; }
  bool quantized() const noexcept { return quantized_; }
  // Float weights that were f32 in the file (not quantized, not f16/bf16): the layer's
  // products are fp32 unless a precision other than Auto/Float asks otherwise.
  bool f32_weights() const noexcept { return !quantized_ && !half_source_; }
  const quant::Format& format() const noexcept { return packed_.format(); }  // if quantized()
  size_t nbytes() const noexcept { return quantized_ ? packed_.nbytes() : dense_.size() * sizeof(float); }

  // y [T, n_out] = x [T, n_in] . W^T (+ bias). Rows of x and y may be strided.
  void forward(const float* x, int64_t T, int64_t ldx, float* y, int64_t ldy, int n_threads,
               bool float_path = false) const {
    forward(x, T, ldx, y, ldy, n_threads, float_path ? ops::Precision::Float : ops::Precision::Auto);
  }
  // Float layers: fp32 products, except that a layer whose weights were f16 or bf16
  // in the file runs under Precision::Auto as under NoInt8: on bf16 tiles where the
  // CPU has AMX-BF16 and T reaches the crossover (ops::matmul's float overloads; the
  // rounding of an f16 weight to bf16 is within 2^-8 of it, an f32 layer stays fp32).
  // tile_min_rows: ops::MatmulOptions::tile_min_rows. add_bias = false leaves the
  // bias to the caller (fused into what it does next). activation: applied after
  // the bias (ops::MatmulOptions::activation). prologue: produces x's rows as the
  // product reads them (ops::MatmulOptions::prologue).
  void forward(const float* x, int64_t T, int64_t ldx, float* y, int64_t ldy, int n_threads,
               ops::Precision precision, int64_t tile_min_rows = 0, bool add_bias = true,
               ops::Activation activation = ops::Activation::None,
               std::function<void(int64_t, int64_t)> prologue = nullptr) const;

  std::vector<float> bias;  // [n_out] or empty
  // Smoothed at load (act_max): x's columns are scaled by act_scale() in forward().
  bool smoothed() const noexcept { return !act_scale_.empty(); }
  const std::vector<float>& act_scale() const noexcept { return act_scale_; }

  // Non-empty if the file's type had to be re-quantized to q8_0 at load.
  const std::string& requantized_from() const noexcept { return requantized_from_; }
  int requantized_parts() const noexcept { return requantized_parts_; }

 private:
  int64_t n_out_ = 0, n_in_ = 0;
  bool quantized_ = false;
  ops::PackedMatrix packed_;
  std::vector<float> dense_;  // [n_out, n_in]
  bool half_source_ = false;  // dense_ was f16/bf16 in the file
  std::vector<float> act_scale_;  // [n_in] if smoothed
  std::string requantized_from_;
  int requantized_parts_ = 0;
};

// Native quantized format of a ggml type, if halfbyte's kernels take it.
bool native_format(io::GgmlType t, quant::Format* out);

// Row `row` of a 2-D GGUF tensor [rows, n] as fp32 (any type the loader reads).
void tensor_row_to_float(const io::GgufFile& f, const io::GgufTensorInfo& t, int64_t row, float* out);

// A whole 1-D fp32/f16/bf16 tensor as fp32, checked against the expected length.
std::vector<float> tensor_vector(const io::GgufFile& f, const io::GgufTensorInfo& t, int64_t n);

}  // namespace halfbyte::model
