// The ISA-neutral driver of the attention kernels, included inside each vector
// ISA's anonymous namespace in kernels/<isa>/attention.cpp (so it has internal
// linkage there, compiled with that ISA's flags). The including file defines,
// before the #include: kScoreRows (query rows per scores tile), scores<T, MR>(a, m0)
// for MR <= kScoreRows, softmax_rows(s, lds, n, rows, inv) (rows of s become
// exp(s - max), zero past n; inv[r] = 1 / the row's sum), row_max(s, n) (the
// largest of s[0..n)), and
// pv_rows<T, MR>(a, m0, inv) for MR <= 4. The includer provides <new> and <cmath>.

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

// out = softmax(scratch) . V for the rows of a, whose scores are in a.scratch.
template <class T>
void softmax_pv(const AttnArgs& a) {
  float inv[64];
  for (int m0 = 0; m0 < a.M; m0 += 64) {
    const int mr = std::min(64, a.M - m0);
    if (a.stats)
      for (int r = 0; r < mr; ++r) a.stats[2 * (m0 + r)] = row_max(a.scratch + (m0 + r) * a.lds, a.n_keys);
    softmax_rows(a.scratch + m0 * a.lds, a.lds, a.n_keys, mr, inv);
    if (a.stats)
      for (int r = 0; r < mr; ++r) a.stats[2 * (m0 + r) + 1] = 1.0f / inv[r];
    AttnArgs b = a;  // rows m0 .. m0 + mr, so that inv[] is indexed from 0
    b.q += m0 * a.ldq;
    b.scratch += m0 * a.lds;
    b.out += m0 * a.ldo;
    for (int m = 0; m < mr; m += 4) pv_rows_upto<T, 4>(b, m, std::min(4, mr - m), inv);
  }
}

template <class T>
void attend(const AttnArgs& a) {
  for (int m0 = 0; m0 < a.M; m0 += kScoreRows) scores_upto<T, kScoreRows>(a, m0, std::min(kScoreRows, a.M - m0));
  softmax_pv<T>(a);
}

// Prompt attention (AttnBlockArgs) from the same steps: per block of up to
// kBlockTokens tokens and per query head, the block's rows are scored in one pass
// over the keys its last token sees (a token at a time: a pass per token), each
// earlier token's later keys set to -inf (weight exp(-87 - max): nothing), then
// softmax and P.V. fp32 throughout: the per-token arithmetic. The scores live in a
// per-thread buffer of kBlockTokens rows.
constexpr int kBlockTokens = 16;

#include "panel_buffer.inl"
thread_local PanelBuffer t_score_rows;

template <class T>
void attend_block(const AttnBlockArgs& b) {
  if (b.T <= 0 || b.group <= 0) return;
  const int64_t nk_max = b.n0 + b.T - 1;
  const int64_t lds = (nk_max + kKeyTile - 1) / kKeyTile * kKeyTile;
  float* scratch = reinterpret_cast<float*>(t_score_rows.get(size_t(kBlockTokens * lds) * sizeof(float)));
  for (int i0 = 0; i0 < b.T; i0 += kBlockTokens) {
    const int tb = std::min(kBlockTokens, b.T - i0);
    const int64_t n_keys = b.n0 + i0 + tb - 1;  // what the block's last token sees
    for (int h = 0; h < b.group; ++h) {
      const AttnArgs a{b.q + i0 * b.ldq + h * b.hd, b.ldq, tb, b.kt, b.v, b.ldv, n_keys, b.hd, b.scale,
                       scratch, lds, b.out + i0 * b.ldo + h * b.hd, b.ldo};
      for (int m0 = 0; m0 < tb; m0 += kScoreRows) scores_upto<T, kScoreRows>(a, m0, std::min(kScoreRows, tb - m0));
      for (int r = 0; r + 1 < tb; ++r)  // token i0 + r sees n0 + i0 + r keys
        for (int64_t j = b.n0 + i0 + r; j < n_keys; ++j) scratch[r * lds + j] = -INFINITY;
      softmax_pv<T>(a);
    }
  }
}
