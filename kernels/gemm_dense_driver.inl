// The ISA-neutral driver of the fp32 float-weight kernels (KernelTable::gemm_dense),
// included inside each vector ISA's anonymous namespace in kernels/<isa>/gemm_dense.cpp
// (internal linkage there, compiled with that ISA's flags). The including file defines,
// before the #include: kAcc (accumulators per tile: MR activation rows x kAcc / MR
// weight rows), kChunk (k per pass), kMBlock (activation rows per pass over a row
// group) and tile<T, MR>(w, x, m, n, nvalid, k0, k1, y, ldy, first) for MR = 4, 2, 1.

template <int T>
void gemm_dense(const Dense& w, const ActF32& x, const GemmTask& t) {
  const int64_t K = w.cols;
  for (int64_t mb = t.m0; mb < t.m1; mb += kMBlock) {
    const int64_t me = t.m1 - mb < kMBlock ? t.m1 : mb + kMBlock;
    for (int64_t g = t.g0; g < t.g1; ++g) {
      const int64_t n0 = g * 16;
      const int nv = int(w.rows - n0 < 16 ? w.rows - n0 : 16);
      for (int64_t k0 = 0; k0 == 0 || k0 < K; k0 += kChunk) {  // (K = 0: one pass writing zeros)
        const int64_t k1 = K - k0 < kChunk ? K : k0 + kChunk;
        const bool first = k0 == 0;
        int64_t m = mb;
        for (; m + 4 <= me; m += 4)
          for (int j = 0; j < nv; j += kAcc / 4) tile<T, 4>(w, x, m, n0 + j, nv - j, k0, k1, t.y, t.ldy, first);
        for (; m + 2 <= me; m += 2)
          for (int j = 0; j < nv; j += kAcc / 2) tile<T, 2>(w, x, m, n0 + j, nv - j, k0, k1, t.y, t.ldy, first);
        for (; m < me; ++m)
          for (int j = 0; j < nv; j += kAcc) tile<T, 1>(w, x, m, n0 + j, nv - j, k0, k1, t.y, t.ldy, first);
      }
    }
  }
}
