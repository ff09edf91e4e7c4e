// Helpers shared by kernels/neon/gemm.cpp and gemm_i8mm.cpp. Included INSIDE each
// file's anonymous namespace, so every translation unit gets its own copy with
// internal linkage (the two are compiled for different -march; a shared inline
// function would be an ODR trap, see tests/install/check_isa_symbols.cmake).

// Small helpers and the unrolled loop bodies must be inlined: their operands are
// register arrays.
#define HB_INLINE inline __attribute__((always_inline))
#define HB_LAMBDA_INLINE __attribute__((always_inline))

// Four consecutive 16-bit scales (fp16, or bf16) as fp32. Exact.
template <bool BF16>
HB_INLINE float32x4_t scales4(const uint8_t* p) {
  const uint16x4_t h = vld1_u16(reinterpret_cast<const uint16_t*>(p));
  if constexpr (BF16) {
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
  } else {
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
  }
}

// Calls fn(std::integral_constant<int, I>) for I = 0..N-1: compile-time indices
// for lanes and register arrays.
template <class Fn, int... I>
HB_INLINE void unroll_seq(Fn& fn, std::integer_sequence<int, I...>) {
  (fn(std::integral_constant<int, I>{}), ...);
}
template <int N, class Fn>
HB_INLINE void unroll(Fn&& fn) {
  unroll_seq(fn, std::make_integer_sequence<int, N>{});
}
