// Roofline probe kernels for x86-64 (see roofline.cpp).
//
// Every function here is compiled with a per-function target attribute, so
// this file (and the binary) builds and runs on any x86-64: roofline.cpp only
// calls a function after __builtin_cpu_supports() said the CPU has its ISA.
//
// Read kernels use intrinsics: their result depends on memory, so the compiler
// can neither drop nor hoist the loads. The peak-compute kernels are whole
// inline-asm loops on explicitly named registers: that fixes the exact
// instruction mix (a compiler would otherwise hoist the loop-invariant
// vpmaddubsw/vpmaddwd of the AVX2 sequence, for instance) and "asm volatile"
// keeps them from being removed.
//
// Compute kernels take a loop trip count and return the number of operations
// they performed (a fused multiply-add counts as 2), so the caller never has
// to know the unroll factor.

#if defined(__x86_64__) || defined(__i386__)

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace hb_roofline {

// --- read bandwidth ---------------------------------------------------------
// `bytes` must be a multiple of 512 and `p` 64-byte aligned.

__attribute__((target("avx512f,avx512bw")))
std::uint64_t read_avx512(const void* p, std::size_t bytes) {
  const char* c = static_cast<const char*>(p);
  __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
  __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
  __m512i a4 = _mm512_setzero_si512(), a5 = _mm512_setzero_si512();
  __m512i a6 = _mm512_setzero_si512(), a7 = _mm512_setzero_si512();
  for (std::size_t i = 0; i < bytes; i += 512) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(c + i + 0 * 64));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(c + i + 1 * 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(c + i + 2 * 64));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(c + i + 3 * 64));
    a4 = _mm512_add_epi64(a4, _mm512_load_si512(c + i + 4 * 64));
    a5 = _mm512_add_epi64(a5, _mm512_load_si512(c + i + 5 * 64));
    a6 = _mm512_add_epi64(a6, _mm512_load_si512(c + i + 6 * 64));
    a7 = _mm512_add_epi64(a7, _mm512_load_si512(c + i + 7 * 64));
  }
  a0 = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
  a4 = _mm512_add_epi64(_mm512_add_epi64(a4, a5), _mm512_add_epi64(a6, a7));
  // (not _mm512_reduce_add_epi64: GCC 12's header trips -Wuninitialized)
  alignas(64) std::uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(a0, a4));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

__attribute__((target("avx2,fma")))
std::uint64_t read_avx2(const void* p, std::size_t bytes) {
  const char* c = static_cast<const char*>(p);
  __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
  __m256i a2 = _mm256_setzero_si256(), a3 = _mm256_setzero_si256();
  __m256i a4 = _mm256_setzero_si256(), a5 = _mm256_setzero_si256();
  __m256i a6 = _mm256_setzero_si256(), a7 = _mm256_setzero_si256();
  for (std::size_t i = 0; i < bytes; i += 256) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(c + i + 0 * 32)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(c + i + 1 * 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(c + i + 2 * 32)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(c + i + 3 * 32)));
    a4 = _mm256_add_epi64(a4, _mm256_load_si256(reinterpret_cast<const __m256i*>(c + i + 4 * 32)));
    a5 = _mm256_add_epi64(a5, _mm256_load_si256(reinterpret_cast<const __m256i*>(c + i + 5 * 32)));
    a6 = _mm256_add_epi64(a6, _mm256_load_si256(reinterpret_cast<const __m256i*>(c + i + 6 * 32)));
    a7 = _mm256_add_epi64(a7, _mm256_load_si256(reinterpret_cast<const __m256i*>(c + i + 7 * 32)));
  }
  a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  a4 = _mm256_add_epi64(_mm256_add_epi64(a4, a5), _mm256_add_epi64(a6, a7));
  a0 = _mm256_add_epi64(a0, a4);
  alignas(32) std::uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a0);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// --- fp32 FMA peak ----------------------------------------------------------
// Accumulators start at 0 and grow by 1e-6 per FMA: no denormals, no infinities.

namespace {
alignas(64) const float kFmaA = 1.0e-3f;
alignas(64) const float kFmaB = 1.0e-3f;
alignas(64) const std::uint8_t kU8[4] = {3, 5, 7, 11};    // vpdpbusd/vpmaddubsw unsigned side
alignas(64) const std::int8_t kS8[4] = {-2, 3, -5, 7};    // signed side
alignas(64) const std::int16_t kOnes16[2] = {1, 1};
}  // namespace

// 16 independent zmm chains, 16 x 16 lanes x 2 flop per trip.
__attribute__((target("avx512f")))
std::uint64_t fma_avx512(std::uint64_t iters, void* sink) {
  if (iters == 0) return 0;
  std::uint64_t n = iters;
  asm volatile(
      "vbroadcastss %[a], %%zmm16\n\t"
      "vbroadcastss %[b], %%zmm17\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vmovaps %%zmm0, %%zmm1\n\t"  "vmovaps %%zmm0, %%zmm2\n\t"  "vmovaps %%zmm0, %%zmm3\n\t"
      "vmovaps %%zmm0, %%zmm4\n\t"  "vmovaps %%zmm0, %%zmm5\n\t"  "vmovaps %%zmm0, %%zmm6\n\t"
      "vmovaps %%zmm0, %%zmm7\n\t"  "vmovaps %%zmm0, %%zmm8\n\t"  "vmovaps %%zmm0, %%zmm9\n\t"
      "vmovaps %%zmm0, %%zmm10\n\t" "vmovaps %%zmm0, %%zmm11\n\t" "vmovaps %%zmm0, %%zmm12\n\t"
      "vmovaps %%zmm0, %%zmm13\n\t" "vmovaps %%zmm0, %%zmm14\n\t" "vmovaps %%zmm0, %%zmm15\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm0\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm1\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm2\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm3\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm4\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm5\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm6\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm7\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm8\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm9\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm10\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm11\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm12\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm13\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm14\n\t"
      "vfmadd231ps %%zmm17, %%zmm16, %%zmm15\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vaddps %%zmm1, %%zmm0, %%zmm0\n\t"
      "vaddps %%zmm15, %%zmm0, %%zmm0\n\t"
      "vmovups %%zmm0, (%[sink])\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      : [a] "m"(kFmaA), [b] "m"(kFmaB), [sink] "r"(sink)
      : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17");
  return iters * 16u * 16u * 2u;
}

// 12 independent ymm chains (FMA latency 4 x 2 ports needs >= 8), 12 x 8 x 2 per trip.
__attribute__((target("avx2,fma")))
std::uint64_t fma_avx2(std::uint64_t iters, void* sink) {
  if (iters == 0) return 0;
  std::uint64_t n = iters;
  asm volatile(
      "vbroadcastss %[a], %%ymm12\n\t"
      "vbroadcastss %[b], %%ymm13\n\t"
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovaps %%ymm0, %%ymm1\n\t"  "vmovaps %%ymm0, %%ymm2\n\t"  "vmovaps %%ymm0, %%ymm3\n\t"
      "vmovaps %%ymm0, %%ymm4\n\t"  "vmovaps %%ymm0, %%ymm5\n\t"  "vmovaps %%ymm0, %%ymm6\n\t"
      "vmovaps %%ymm0, %%ymm7\n\t"  "vmovaps %%ymm0, %%ymm8\n\t"  "vmovaps %%ymm0, %%ymm9\n\t"
      "vmovaps %%ymm0, %%ymm10\n\t" "vmovaps %%ymm0, %%ymm11\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm0\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm1\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm2\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm3\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm4\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm5\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm6\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm7\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm8\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm9\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm10\n\t"
      "vfmadd231ps %%ymm13, %%ymm12, %%ymm11\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vaddps %%ymm1, %%ymm0, %%ymm0\n\t"
      "vaddps %%ymm11, %%ymm0, %%ymm0\n\t"
      "vmovups %%ymm0, (%[sink])\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      : [a] "m"(kFmaA), [b] "m"(kFmaB), [sink] "r"(sink)
      : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13");
  return iters * 12u * 8u * 2u;
}

// --- int8 dot peak ----------------------------------------------------------
// One u8 x s8 multiply-add counts as 2 ops. int32 accumulators wrap harmlessly.

// AVX-512 VNNI, zmm: 16 chains x 64 MACs per trip.
__attribute__((target("avx512f,avx512bw,avx512vnni")))
std::uint64_t dot_vnni512(std::uint64_t iters, void* sink) {
  if (iters == 0) return 0;
  std::uint64_t n = iters;
  asm volatile(
      "vpbroadcastd %[a], %%zmm16\n\t"
      "vpbroadcastd %[b], %%zmm17\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vmovdqa64 %%zmm0, %%zmm1\n\t"  "vmovdqa64 %%zmm0, %%zmm2\n\t"  "vmovdqa64 %%zmm0, %%zmm3\n\t"
      "vmovdqa64 %%zmm0, %%zmm4\n\t"  "vmovdqa64 %%zmm0, %%zmm5\n\t"  "vmovdqa64 %%zmm0, %%zmm6\n\t"
      "vmovdqa64 %%zmm0, %%zmm7\n\t"  "vmovdqa64 %%zmm0, %%zmm8\n\t"  "vmovdqa64 %%zmm0, %%zmm9\n\t"
      "vmovdqa64 %%zmm0, %%zmm10\n\t" "vmovdqa64 %%zmm0, %%zmm11\n\t" "vmovdqa64 %%zmm0, %%zmm12\n\t"
      "vmovdqa64 %%zmm0, %%zmm13\n\t" "vmovdqa64 %%zmm0, %%zmm14\n\t" "vmovdqa64 %%zmm0, %%zmm15\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm0\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm1\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm2\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm3\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm4\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm5\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm6\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm7\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm8\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm9\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm10\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm11\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm12\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm13\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm14\n\t"
      "vpdpbusd %%zmm17, %%zmm16, %%zmm15\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vpaddd %%zmm1, %%zmm0, %%zmm0\n\t"
      "vpaddd %%zmm15, %%zmm0, %%zmm0\n\t"
      "vmovdqu64 %%zmm0, (%[sink])\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      : [a] "m"(kU8), [b] "m"(kS8), [sink] "r"(sink)
      : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17");
  return iters * 16u * 64u * 2u;
}

// AVX-512 VNNI on ymm (EVEX, needs AVX512VL): 16 chains x 32 MACs per trip.
// On CPUs that split zmm into two 256-bit halves (Zen 4) this should match the
// zmm rate; on Intel it shows what 256-bit code leaves on the table.
__attribute__((target("avx512f,avx512vl,avx512vnni")))
std::uint64_t dot_vnni512_ymm(std::uint64_t iters, void* sink) {
  if (iters == 0) return 0;
  std::uint64_t n = iters;
  asm volatile(
      "vpbroadcastd %[a], %%ymm16\n\t"
      "vpbroadcastd %[b], %%ymm17\n\t"
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovdqa %%ymm0, %%ymm1\n\t"  "vmovdqa %%ymm0, %%ymm2\n\t"  "vmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\t"  "vmovdqa %%ymm0, %%ymm5\n\t"  "vmovdqa %%ymm0, %%ymm6\n\t"
      "vmovdqa %%ymm0, %%ymm7\n\t"  "vmovdqa %%ymm0, %%ymm8\n\t"  "vmovdqa %%ymm0, %%ymm9\n\t"
      "vmovdqa %%ymm0, %%ymm10\n\t" "vmovdqa %%ymm0, %%ymm11\n\t" "vmovdqa %%ymm0, %%ymm12\n\t"
      "vmovdqa %%ymm0, %%ymm13\n\t" "vmovdqa %%ymm0, %%ymm14\n\t" "vmovdqa %%ymm0, %%ymm15\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm0\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm1\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm2\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm3\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm4\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm5\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm6\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm7\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm8\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm9\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm10\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm11\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm12\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm13\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm14\n\t"
      "%{evex%} vpdpbusd %%ymm17, %%ymm16, %%ymm15\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vpaddd %%ymm1, %%ymm0, %%ymm0\n\t"
      "vpaddd %%ymm15, %%ymm0, %%ymm0\n\t"
      "vmovdqu %%ymm0, (%[sink])\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      : [a] "m"(kU8), [b] "m"(kS8), [sink] "r"(sink)
      : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17");
  return iters * 16u * 32u * 2u;
}

// AVX-VNNI (VEX-encoded vpdpbusd, Alder Lake / Sapphire Rapids / Zen 5):
// 12 ymm chains x 32 MACs per trip.
__attribute__((target("avx2,avxvnni")))
std::uint64_t dot_avxvnni(std::uint64_t iters, void* sink) {
  if (iters == 0) return 0;
  std::uint64_t n = iters;
  asm volatile(
      "vpbroadcastd %[a], %%ymm12\n\t"
      "vpbroadcastd %[b], %%ymm13\n\t"
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovdqa %%ymm0, %%ymm1\n\t"  "vmovdqa %%ymm0, %%ymm2\n\t"  "vmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\t"  "vmovdqa %%ymm0, %%ymm5\n\t"  "vmovdqa %%ymm0, %%ymm6\n\t"
      "vmovdqa %%ymm0, %%ymm7\n\t"  "vmovdqa %%ymm0, %%ymm8\n\t"  "vmovdqa %%ymm0, %%ymm9\n\t"
      "vmovdqa %%ymm0, %%ymm10\n\t" "vmovdqa %%ymm0, %%ymm11\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm0\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm1\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm2\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm3\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm4\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm5\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm6\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm7\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm8\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm9\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm10\n\t"
      "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm11\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vpaddd %%ymm1, %%ymm0, %%ymm0\n\t"
      "vpaddd %%ymm11, %%ymm0, %%ymm0\n\t"
      "vmovdqu %%ymm0, (%[sink])\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      : [a] "m"(kU8), [b] "m"(kS8), [sink] "r"(sink)
      : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13");
  return iters * 12u * 32u * 2u;
}

// AVX2 without VNNI: vpmaddubsw (u8 x s8 -> pairwise int16, saturating) +
// vpmaddwd with ones (-> int32) + vpaddd. Three instructions per 32 MACs.
// 8 accumulator chains (ymm0-7), 4 rotating temporaries (ymm8-11; register
// renaming removes the false dependences), a = ymm12, b = ymm13, ones = ymm14.
__attribute__((target("avx2,fma")))
std::uint64_t dot_avx2_maddubs(std::uint64_t iters, void* sink) {
  if (iters == 0) return 0;
  std::uint64_t n = iters;
#define HB_RL_STEP(T, ACC)                          \
  "vpmaddubsw %%ymm13, %%ymm12, %%" T "\n\t"         \
  "vpmaddwd %%ymm14, %%" T ", %%" T "\n\t"           \
  "vpaddd %%" T ", %%" ACC ", %%" ACC "\n\t"
  asm volatile(
      "vpbroadcastd %[a], %%ymm12\n\t"
      "vpbroadcastd %[b], %%ymm13\n\t"
      "vpbroadcastd %[ones], %%ymm14\n\t"
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovdqa %%ymm0, %%ymm1\n\t" "vmovdqa %%ymm0, %%ymm2\n\t" "vmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\t" "vmovdqa %%ymm0, %%ymm5\n\t" "vmovdqa %%ymm0, %%ymm6\n\t"
      "vmovdqa %%ymm0, %%ymm7\n\t"
      ".p2align 5\n"
      "1:\n\t"
      HB_RL_STEP("ymm8", "ymm0")
      HB_RL_STEP("ymm9", "ymm1")
      HB_RL_STEP("ymm10", "ymm2")
      HB_RL_STEP("ymm11", "ymm3")
      HB_RL_STEP("ymm8", "ymm4")
      HB_RL_STEP("ymm9", "ymm5")
      HB_RL_STEP("ymm10", "ymm6")
      HB_RL_STEP("ymm11", "ymm7")
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vpaddd %%ymm1, %%ymm0, %%ymm0\n\t"
      "vpaddd %%ymm7, %%ymm0, %%ymm0\n\t"
      "vmovdqu %%ymm0, (%[sink])\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      : [a] "m"(kU8), [b] "m"(kS8), [ones] "m"(kOnes16), [sink] "r"(sink)
      : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14");
#undef HB_RL_STEP
  return iters * 8u * 32u * 2u;
}

// --- AMX int8 tile peak ------------------------------------------------------
// amx_permission(): Linux grants a process the 8 KB of tile data per thread only
// on request (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); without it the
// first tile instruction raises SIGILL. Returns "" when granted, else why not.
// dot_amx: tiles 0-3 are 16 x 16 int32 accumulators, 4-5 the A tiles (16 x 64
// int8), 6-7 the B tiles (16 rows of 4-byte groups): 4 independent tdpbssd per
// trip, 16 x 16 x 64 multiply-adds each. The configuration is loaded per call
// (a few cycles against ~2^29 ops) and released at the end.

const char* amx_permission() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "no CPUID leaf 7";
  if (!(d & (1u << 24)) || !(d & (1u << 25))) return "no AMX-TILE/AMX-INT8";
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return "the OS has not enabled the AMX tile state";
#if defined(__linux__)
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) != 0)
    return "Linux refused the AMX tile state (arch_prctl)";
  return "";
#else
  return "AMX permission is requested on Linux only";
#endif
}

namespace {
struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};
alignas(64) const std::int8_t kTileData[16 * 64] = {1, -2, 3, -4, 5, -6, 7, -8};
}  // namespace

__attribute__((target("amx-tile,amx-int8")))
std::uint64_t dot_amx(std::uint64_t iters, void* sink) {
  if (iters == 0) return 0;
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
  _tile_loadd(4, kTileData, 64); _tile_loadd(5, kTileData, 64);
  _tile_loadd(6, kTileData, 64); _tile_loadd(7, kTileData, 64);
  for (std::uint64_t i = 0; i < iters; ++i) {
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
  }
  alignas(64) std::int32_t c[16 * 16];
  _tile_stored(0, c, 64);
  _tile_release();
  __builtin_memcpy(sink, c, 64);  // the sink holds 64 bytes: one row of the tile
  return iters * 4u * 16u * 16u * 64u * 2u;
}

}  // namespace hb_roofline

#endif  // x86
