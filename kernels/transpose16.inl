// transpose16: a 16 x 16 block of 32-bit values in 16 zmm registers transposed in
// place. Included inside the anonymous namespace of AVX-512 kernel files
// (kernels/avx512/attention.cpp, kernels/amx/tile_gemm_dense.inl), which provide
// <immintrin.h>: internal linkage in each (see kernels/CMakeLists.txt).

// r[i][c] <-> r[c][i]: a 16 x 16 block of floats transposed in registers (unpack
// pairs of rows, then 4 x 4 blocks within 128-bit lanes, then the lanes).
inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int g = 0; g < 16; g += 4) {  // u[g + c], 128-bit lane L: column 4 L + c of rows g .. g + 3
    u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
    u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
    u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
    u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 a = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), b = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 a2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44), b2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_f32x4(a, a2, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(a, a2, 0xDD);
    r[8 + c] = _mm512_shuffle_f32x4(b, b2, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(b, b2, 0xDD);
  }
}
