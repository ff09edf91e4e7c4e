// Float weights (f32, f16, bf16) on the bf16 tiles of tile_gemm_bf16.inl (issue #9,
// item 3), included after it in kernels/amx/gemm.cpp and gemm_emulated.cpp. The
// blocking, the activations' A tiles and the stores are tile_gemm_bf16.inl's
// (tiles_bf16); only the widening differs: a row group's 16 weight rows, 32 k at a
// time, are rounded to bf16 (each row's 32 values become 16 pairs k, k + 1) and
// transposed as 16 x 16 pairs into the B tile (row p: pair p of the 16 weight rows).
// K need not be a multiple of 32: the last block is padded with zeros on both sides,
// rows past N with zeros (masked at the store).
//
// Precision: each product is of two bf16 values, the sums fp32, so against the exact
// product of the weights as given |y - y*| <= (2^-7 + 2^-16 + K 2^-23) sum_k |w_k x_k|
// (f32 and f16 weights are rounded; bf16 weights are exact). That is what OpenVINO's
// and oneDNN's bf16 modes give, not fp32: ops::matmul takes this path for f32
// weights only under Precision::NoInt8 (matmul.hpp).

#include "dense16.inl"
#include "transpose16.inl"

// Row group g of w (rows 16 g .. 16 g + 15) as bf16 B tiles: block kb at out + kb *
// 1024, 16 rows of 64 bytes (row p: (w[n][32 kb + 2p], w[n][32 kb + 2p + 1]) for n =
// 0..15).
template <class Tiles, int T>
void widen_dense_group(const Dense& w, int64_t g, uint8_t* out) {
  constexpr size_t kElem = T == kDenseF32 ? 4 : 2;
  const int64_t nb = (w.cols + 31) / 32;
  const int64_t left = w.rows - g * 16;
  const int valid = int(left >= 16 ? 16 : left);
  const auto* base = static_cast<const uint8_t*>(w.data) + size_t(g * 16 * w.ld) * kElem;
  for (int64_t kb = 0; kb < nb; ++kb) {
    const int64_t k0 = kb * 32, rest = w.cols - k0;
    const __mmask16 mlo = rest >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rest) - 1u);
    const __mmask16 mhi = rest >= 32 ? __mmask16(0xFFFF) : rest > 16 ? __mmask16((1u << (rest - 16)) - 1u) : 0;
    __m512 r[16];
    for (int n = 0; n < 16; ++n) {
      if (n >= valid) {
        r[n] = _mm512_setzero_ps();
        continue;
      }
      const void* row = base + size_t(n * w.ld) * kElem;
      r[n] = _mm512_castsi512_ps(Tiles::bf16x32(dense16<T>(row, k0, mlo), dense16<T>(row, k0 + 16, mhi)));
    }
    transpose16(r);
    for (int p = 0; p < 16; ++p) _mm512_store_ps(out + kb * 1024 + p * 64, r[p]);
  }
}

template <class Tiles, int T>
void gemm_tiles_dense(const Dense& w, const ActF32& x, const GemmTask& t) {
  tiles_bf16<Tiles>(w.cols, w.rows, x, t, [&](int64_t g, uint8_t* out) { widen_dense_group<Tiles, T>(w, g, out); });
}

template <class Tiles>
GemmDenseFn dense_tiles_for(DenseType t) {
  static const GemmDenseFn fns[kDenseTypes] = {gemm_tiles_dense<Tiles, kDenseF32>, gemm_tiles_dense<Tiles, kDenseF16>,
                                               gemm_tiles_dense<Tiles, kDenseBF16>};
  return fns[t];
}
