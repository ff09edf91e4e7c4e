// Roofline probe kernels for aarch64 (see roofline.cpp). Empty elsewhere.
//
// Same conventions as roofline_kernels_x86.cpp: whole inline-asm loops on named
// registers, returning the number of operations performed (multiply-add = 2).

#if defined(__aarch64__)

#include <cstdint>

#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

namespace hb_roofline {

bool neon_has_dotprod() {
#if defined(__linux__)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__ARM_FEATURE_DOTPROD)
  return true;
#else
  return false;
#endif
}

// fp32: 16 independent fmla chains on 128-bit vectors, 16 x 4 lanes x 2 per trip.
std::uint64_t fma_neon(std::uint64_t iters, void* sink) {
  if (iters == 0) return 0;
  std::uint64_t n = iters;
  asm volatile(
      "fmov v30.4s, #0.125\n\t"  // accumulators grow by 1/64 per trip: no inf, no denormals
      "fmov v31.4s, #0.125\n\t"
      "movi v0.4s, #0\n\t"  "movi v1.4s, #0\n\t"  "movi v2.4s, #0\n\t"  "movi v3.4s, #0\n\t"
      "movi v4.4s, #0\n\t"  "movi v5.4s, #0\n\t"  "movi v6.4s, #0\n\t"  "movi v7.4s, #0\n\t"
      "movi v8.4s, #0\n\t"  "movi v9.4s, #0\n\t"  "movi v10.4s, #0\n\t" "movi v11.4s, #0\n\t"
      "movi v12.4s, #0\n\t" "movi v13.4s, #0\n\t" "movi v14.4s, #0\n\t" "movi v15.4s, #0\n\t"
      "1:\n\t"
      "fmla v0.4s, v30.4s, v31.4s\n\t"  "fmla v1.4s, v30.4s, v31.4s\n\t"
      "fmla v2.4s, v30.4s, v31.4s\n\t"  "fmla v3.4s, v30.4s, v31.4s\n\t"
      "fmla v4.4s, v30.4s, v31.4s\n\t"  "fmla v5.4s, v30.4s, v31.4s\n\t"
      "fmla v6.4s, v30.4s, v31.4s\n\t"  "fmla v7.4s, v30.4s, v31.4s\n\t"
      "fmla v8.4s, v30.4s, v31.4s\n\t"  "fmla v9.4s, v30.4s, v31.4s\n\t"
      "fmla v10.4s, v30.4s, v31.4s\n\t" "fmla v11.4s, v30.4s, v31.4s\n\t"
      "fmla v12.4s, v30.4s, v31.4s\n\t" "fmla v13.4s, v30.4s, v31.4s\n\t"
      "fmla v14.4s, v30.4s, v31.4s\n\t" "fmla v15.4s, v30.4s, v31.4s\n\t"
      "subs %[n], %[n], #1\n\t"
      "b.ne 1b\n\t"
      "fadd v0.4s, v0.4s, v15.4s\n\t"
      "str q0, [%[sink]]\n\t"
      : [n] "+r"(n)
      : [sink] "r"(sink)
      : "memory", "cc", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11",
        "v12", "v13", "v14", "v15", "v30", "v31");
  return iters * 16u * 4u * 2u;
}

// int8: 16 independent sdot chains (s8 x s8, 16 MACs per instruction).
// "arch=armv8.2-a+dotprod" rather than just "+dotprod": GCC then emits
// `.arch armv8.2-a+dotprod`, and binutils (2.40 at least) refuses sdot under
// a plain armv8-a base even with +dotprod.
__attribute__((target("arch=armv8.2-a+dotprod")))
std::uint64_t dot_sdot(std::uint64_t iters, void* sink) {
  if (iters == 0) return 0;
  std::uint64_t n = iters;
  asm volatile(
      "movi v30.16b, #3\n\t"
      "movi v31.16b, #5\n\t"
      "movi v0.4s, #0\n\t"  "movi v1.4s, #0\n\t"  "movi v2.4s, #0\n\t"  "movi v3.4s, #0\n\t"
      "movi v4.4s, #0\n\t"  "movi v5.4s, #0\n\t"  "movi v6.4s, #0\n\t"  "movi v7.4s, #0\n\t"
      "movi v8.4s, #0\n\t"  "movi v9.4s, #0\n\t"  "movi v10.4s, #0\n\t" "movi v11.4s, #0\n\t"
      "movi v12.4s, #0\n\t" "movi v13.4s, #0\n\t" "movi v14.4s, #0\n\t" "movi v15.4s, #0\n\t"
      "1:\n\t"
      "sdot v0.4s, v30.16b, v31.16b\n\t"  "sdot v1.4s, v30.16b, v31.16b\n\t"
      "sdot v2.4s, v30.16b, v31.16b\n\t"  "sdot v3.4s, v30.16b, v31.16b\n\t"
      "sdot v4.4s, v30.16b, v31.16b\n\t"  "sdot v5.4s, v30.16b, v31.16b\n\t"
      "sdot v6.4s, v30.16b, v31.16b\n\t"  "sdot v7.4s, v30.16b, v31.16b\n\t"
      "sdot v8.4s, v30.16b, v31.16b\n\t"  "sdot v9.4s, v30.16b, v31.16b\n\t"
      "sdot v10.4s, v30.16b, v31.16b\n\t" "sdot v11.4s, v30.16b, v31.16b\n\t"
      "sdot v12.4s, v30.16b, v31.16b\n\t" "sdot v13.4s, v30.16b, v31.16b\n\t"
      "sdot v14.4s, v30.16b, v31.16b\n\t" "sdot v15.4s, v30.16b, v31.16b\n\t"
      "subs %[n], %[n], #1\n\t"
      "b.ne 1b\n\t"
      "add v0.4s, v0.4s, v15.4s\n\t"
      "str q0, [%[sink]]\n\t"
      : [n] "+r"(n)
      : [sink] "r"(sink)
      : "memory", "cc", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11",
        "v12", "v13", "v14", "v15", "v30", "v31");
  return iters * 16u * 16u * 2u;
}

}  // namespace hb_roofline

#endif  // __aarch64__
