// dense16<T>: 16 values of a float row (f32, f16 or bf16 bits: kernel_table.hpp's
// DenseType) from element k as fp32, exactly; lanes off the mask are 0. Included
// inside the anonymous namespace of AVX-512 kernel files (kernels/avx512/gemm_dense.cpp,
// kernels/amx/tile_gemm_dense.inl, kernels/amx/tile_attention.inl), which provide
// <immintrin.h> and kernel_table.hpp: internal linkage in each (see kernels/CMakeLists.txt).
#ifndef HALFBYTE_DENSE16_INL
#define HALFBYTE_DENSE16_INL

template <int T>
inline __m512 dense16(const void* row, int64_t k, __mmask16 m = 0xFFFF) {
  if constexpr (T == kDenseF32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(row) + k);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(row) + k);
    if constexpr (T == kDenseF16) return _mm512_cvtph_ps(h);
    else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

#endif
