#include "model/linear.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "halfbyte/core/error.hpp"
#include "halfbyte/core/half.hpp"
#include "halfbyte/ops/matmul.hpp"
#include "halfbyte/quant/qmatrix.hpp"
#include "halfbyte/quant/quantize.hpp"
#include "io/ggml_dequant.hpp"

namespace halfbyte::model {

bool native_format(io::GgmlType t, quant::Format* out) {
  switch (t) {
    case io::GgmlType::Q4_0: *out = quant::Format::q4_0(); return true;
    case io::GgmlType::Q4_1: *out = quant::Format::q4_1(); return true;
    case io::GgmlType::Q8_0: *out = quant::Format::q8_0(); return true;
    default: return false;
  }
}

void tensor_row_to_float(const io::GgufFile& f, const io::GgufTensorInfo& t, int64_t row, float* out) {
  const int64_t n = t.ne[0];
  const auto& ti = io::ggml_type_info(t.type);
  const size_t row_bytes = size_t(n / ti.block) * size_t(ti.block_bytes);
  const uint8_t* src = f.data(t) + size_t(row) * row_bytes;
  quant::Format fmt;
  if (native_format(t.type, &fmt)) {
    quant::dequantize_row(fmt, src, n, out);
    return;
  }
  switch (t.type) {
    case io::GgmlType::F32: std::memcpy(out, src, size_t(n) * 4); return;
    case io::GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = fp16_to_fp32(h);
      }
      return;
    case io::GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = bf16_to_fp32(h);
      }
      return;
    default:
      if (io::ggml_dequantize_row(t.type, src, n, out)) return;
      throw_error(ErrorKind::Unsupported, f.path(), ": tensor '", t.name, "' has type ", ti.name,
                  ", which this version cannot read yet (supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, "
                  "q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, q8_K)");
  }
}

std::vector<float> tensor_vector(const io::GgufFile& f, const io::GgufTensorInfo& t, int64_t n) {
  if (t.numel() != n || t.ne.size() != 1)
    throw_error(ErrorKind::Format, f.path(), ": tensor '", t.name, "' should be a vector of ", n, " values");
  std::vector<float> v(static_cast<size_t>(n));
  tensor_row_to_float(f, t, 0, v.data());
  f.release_pages(t);
  return v;
}

namespace {

// SmoothQuant with alpha 1/2 on W [rows, n] in place; returns 1 / s per column.
std::vector<float> smooth_columns(float* w, int64_t rows, int64_t n, const float* act_max) {
  std::vector<float> wmax(size_t(n), 0.0f), s(size_t(n), 1.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) wmax[size_t(j)] = std::max(wmax[size_t(j)], std::fabs(w[r * n + j]));
  for (int64_t j = 0; j < n; ++j)
    if (wmax[size_t(j)] > 0.0f && std::isfinite(act_max[j]))
      s[size_t(j)] = std::sqrt(std::max(act_max[j], 1e-5f) / wmax[size_t(j)]);
  std::vector<float> sorted = s;
  std::nth_element(sorted.begin(), sorted.begin() + n / 2, sorted.end());
  const float median = sorted[size_t(n / 2)];
  std::vector<float> inv(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    // Within 2^-8..2^8 of the median: a degenerate column (all but zero, or a
    // huge estimate) must not push the others' weights out of range.
    s[size_t(j)] = std::clamp(s[size_t(j)] / median, 1.0f / 256.0f, 256.0f);
    inv[size_t(j)] = 1.0f / s[size_t(j)];
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) w[r * n + j] *= s[size_t(j)];
  return inv;
}

}  // namespace

Linear Linear::from_gguf(const io::GgufFile& f, const std::vector<const io::GgufTensorInfo*>& parts, int64_t n_in,
                         const quant::Format* float_to, const float* act_max) {
  Linear l;
  l.n_in_ = n_in;
  quant::Format fmt;
  bool all_native = true, requant = false;
  for (const auto* t : parts) {
    if (t->ne.size() != 2 || t->ne[0] != n_in)
      throw_error(ErrorKind::Format, f.path(), ": tensor '", t->name, "' should have ", n_in,
                  " columns (GGUF ne[0]), has shape ne = [", t->ne[0], t->ne.size() > 1 ? ", ..." : "", "]");
    l.n_out_ += t->ne[1];
    quant::Format tf;
    if (!native_format(t->type, &tf) || (t != parts[0] && !(tf == fmt))) all_native = false;
    if (t == parts[0]) fmt = tf;
    if (io::ggml_dequantize_supported(t->type)) {
      requant = true;
      l.requantized_from_ = io::ggml_type_info(t->type).name;
      ++l.requantized_parts_;
    }
  }
  if (all_native) {
    std::vector<ops::PackedMatrix::RowSource> src;
    for (const auto* t : parts) src.push_back({f.data(*t), t->ne[1]});
    // Release the file's pages as they are repacked: the peak stays near the packed
    // size instead of file + packed for the largest tensor (e.g. a 30 MB embedding).
    const size_t rb = quant::row_bytes(fmt, n_in);
    const auto consumed = [&](int64_t begin, int64_t end) {  // called from the packing threads
      int64_t start = 0;
      for (const auto* t : parts) {
        const int64_t b = std::clamp<int64_t>(begin - start, 0, t->ne[1]);
        const int64_t e = std::clamp<int64_t>(end - start, 0, t->ne[1]);
        if (e > b) f.release_pages(*t, uint64_t(b) * rb, uint64_t(e) * rb);
        start += t->ne[1];
      }
    };
    l.packed_ = ops::PackedMatrix::pack_rows(fmt, n_in, src, consumed);
    l.quantized_ = true;
    for (const auto* t : parts) f.release_pages(*t);
    return l;
  }
  if (requant) {
    // Types the kernels do not take (q5_x, k-quants): dequantize each row and
    // re-quantize it to q8_0 (round to nearest, ggml's reference arithmetic), which
    // keeps the layer at ~1 byte per weight instead of 4.
    const quant::Format q8 = quant::Format::q8_0();
    const size_t rb = quant::row_bytes(q8, n_in);
    std::vector<uint8_t> rows(rb * size_t(l.n_out_));
    std::vector<float> tmp(static_cast<size_t>(n_in));
    quant::QuantizeOptions opts;
    opts.method = quant::Method::RTN;
    int64_t row = 0;
    for (const auto* t : parts)
      for (int64_t r = 0; r < t->ne[1]; ++r, ++row) {
        tensor_row_to_float(f, *t, r, tmp.data());
        quant::quantize_row(q8, tmp.data(), n_in, rows.data() + size_t(row) * rb, opts);
      }
    l.packed_ = ops::PackedMatrix::pack_rows(q8, n_in, {{rows.data(), l.n_out_}});
    l.quantized_ = true;
    for (const auto* t : parts) f.release_pages(*t);
    return l;
  }
  l.dense_.resize(size_t(l.n_out_ * n_in));
  int64_t row = 0;
  for (const auto* t : parts)
    for (int64_t r = 0; r < t->ne[1]; ++r, ++row) tensor_row_to_float(f, *t, r, l.dense_.data() + row * n_in);
  if (float_to) {
    if (n_in % float_to->block_size() != 0)
      throw_error(ErrorKind::InvalidArgument, f.path(), ": tensor '", parts[0]->name, "' has rows of ", n_in,
                  " values, not a multiple of ", float_to->name(), "'s block of ", float_to->block_size(),
                  " (choose another format or keep it float)");
    if (act_max) l.act_scale_ = smooth_columns(l.dense_.data(), l.n_out_, n_in, act_max);
    const quant::QMatrix q = quant::quantize(TensorView<const float>(l.dense_.data(), {l.n_out_, n_in}), *float_to);
    l.packed_ = ops::PackedMatrix::pack(q);
    l.quantized_ = true;
    std::vector<float>().swap(l.dense_);
  } else {
    l.half_source_ = std::all_of(parts.begin(), parts.end(), [](const io::GgufTensorInfo* t) {
      return t->type == io::GgmlType::F16 || t->type == io::GgmlType::BF16;
    });
  }
  for (const auto* t : parts) f.release_pages(*t);
  return l;
}

void Linear::forward(const float* x, int64_t T, int64_t ldx, float* y, int64_t ldy, int n_threads,
                     ops::Precision precision, int64_t tile_min_rows, bool add_bias,
                     ops::Activation activation, std::function<void(int64_t, int64_t)> prologue) const {
  ops::MatmulOptions o;
  o.n_threads = n_threads;
  // 16-bit weights in the file: bf16 tiles are as precise as they were (see linear.hpp).
  o.precision = !quantized_ && half_source_ && precision == ops::Precision::Auto ? ops::Precision::NoInt8 : precision;
  o.tile_min_rows = tile_min_rows;
  if (smoothed()) o.act_scale = act_scale_.data();
  if (add_bias && !bias.empty()) o.bias = bias.data();
  o.activation = activation;
  o.prologue = std::move(prologue);
  const TensorView<const float> xv(x, {T, n_in_}, {ldx, 1});
  const TensorView<float> yv(y, {T, n_out_}, {ldy, 1});
  if (quantized_)
    ops::matmul(xv, packed_, yv, o);
  else
    ops::matmul(xv, TensorView<const float>(dense_.data(), {n_out_, n_in_}), yv, o);
}

}  // namespace halfbyte::model
