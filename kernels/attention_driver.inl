// The ISA-neutral driver of the attention kernels, included inside each vector
// ISA's anonymous namespace in kernels/<isa>/attention.cpp (so it has internal
// linkage there, compiled with that ISA's flags). The including file defines,
// before the #include: kScoreRows (query rows per scores tile), scores<T, MR>(a, m0)
// for MR <= kScoreRows, softmax_rows(s, lds, n, rows, inv) (rows of s become
// exp(s - max), zero past n; inv[r] = 1 / the row's sum), and
// pv_rows<T, MR>(a, m0, inv) for MR <= 4.

// scores<T, mr> for a runtime 1 <= mr <= MR.
template <class T, int MR>
void scores_upto(const AttnArgs& a, int m0, int mr) {
  if constexpr (MR > 1) {
    if (mr < MR) return scores_upto<T, MR - 1>(a, m0, mr);
  }
  scores<T, MR>(a, m0);
}

template <class T, int MR>
void pv_rows_upto(const AttnArgs& a, int m0, int mr, const float* inv) {
  if constexpr (MR > 1) {
    if (mr < MR) return pv_rows_upto<T, MR - 1>(a, m0, mr, inv);
  }
  pv_rows<T, MR>(a, m0, inv);
}

template <class T>
void attend(const AttnArgs& a) {
  for (int m0 = 0; m0 < a.M; m0 += kScoreRows) scores_upto<T, kScoreRows>(a, m0, std::min(kScoreRows, a.M - m0));
  float inv[64];
  for (int m0 = 0; m0 < a.M; m0 += 64) {
    const int mr = std::min(64, a.M - m0);
    softmax_rows(a.scratch + m0 * a.lds, a.lds, a.n_keys, mr, inv);
    AttnArgs b = a;  // rows m0 .. m0 + mr, so that inv[] is indexed from 0
    b.q += m0 * a.ldq;
    b.scratch += m0 * a.lds;
    b.out += m0 * a.ldo;
    for (int m = 0; m < mr; m += 4) pv_rows_upto<T, 4>(b, m, std::min(4, mr - m), inv);
  }
}
