// The Llama-family decoder: weights, KV cache and the forward pass. Internal.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/memory_map.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/model/model.hpp"
#include "halfbyte/quant/imatrix.hpp"
#include "model/kv_cache.hpp"
#include "model/linear.hpp"

namespace halfbyte::model {

Config config_from_gguf(const io::GgufFile& f);

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // [D]
  Linear wqkv;     // [(H + 2 Hkv) * hd, D]: Q, K, V stacked
  Linear wo;       // [D, H * hd]
  Linear w_gate_up;  // [2 F, D]: gate then up
  Linear w_down;   // [D, F]
};

class Llama {
 public:
  // float_to: format for weights stored as float (null: keep them fp32).
  // kv_f16: the KV cache in fp16 (else fp32). progress, if set, is called after each
  // layer with (l + 1) / (n_layer + 1); returning false cancels (Error(Runtime)).
  // n_seq: KV-cache slots (independent sequences), each of n_ctx positions.
  Llama(const io::GgufFile& f, const Config& c, int64_t n_ctx, int64_t n_batch, int n_threads, bool float_matmul,
        const quant::Format* float_to, bool kv_f16, int n_seq, const std::function<bool(float)>& progress = {});

  // Runs tokens at positions [pos, pos + n) of sequence 0 (its KV cache holds
  // [0, pos)). Writes logits for the last token, or for all n when all_logits.
  void forward(const int32_t* tokens, int64_t n, int64_t pos, bool all_logits, float* logits);
  // Runs n tokens of any sequences in one pass: token i is at position pos[i] of
  // sequence seq[i], whose cache must hold [0, pos[i]) by the time it is reached
  // (earlier in this batch or before). Writes the logits of the tokens listed in
  // logit_rows (ascending), one row of n_vocab each, in that order. n <= n_batch.
  void forward(const int32_t* tokens, const int32_t* seq, const int64_t* pos, int64_t n, const int64_t* logit_rows,
               int64_t n_logits, float* logits);

  int64_t n_ctx() const noexcept { return n_ctx_; }
  void discard_kv(int seq) noexcept { kv_[size_t(seq)].discard(); }
  void copy_kv(int from, int to, int64_t n) { kv_[size_t(to)].copy_prefix(kv_[size_t(from)], n); }
  // Fills the weights, KV cache and scratch fields of a memory report.
  void memory(MemoryReport& r) const;
  // Accumulate matmul input statistics into m (null: stop); see Model::collect_activations.
  void collect_activations(quant::Imatrix* m) noexcept { stats_ = m; }
  // Tensors re-quantized to q8_0 at load, by their file type (e.g. "q4_K" -> 210).
  const std::map<std::string, int>& requantized() const noexcept { return requantized_; }

 private:
  void embed(const int32_t* tokens, int64_t n, float* x) const;
  void attention(int layer, int64_t n, const int32_t* seq, const int64_t* pos);
  bool split_decode(int64_t jobs, const int64_t* pos) const;
  void attention_split(int layer, const int32_t* seq, const int64_t* pos, int64_t jobs, size_t scratch);

  const io::GgufFile& file_;
  Config c_;
  int64_t n_ctx_, n_batch_;
  int n_threads_;
  bool float_;
  const io::GgufTensorInfo* tok_embd_;
  std::vector<LayerWeights> layers_;
  std::vector<float> out_norm_;
  Linear output_;
  std::vector<KvCache> kv_;  // one per sequence
  // Scratch for n_batch tokens, sized once in one anonymous mapping: resident only
  // as far as batches have used it.
  ScratchArena scratch_;
  float *x_, *xn_, *qkv_, *att_, *tmp_, *gu_, *act_, *scores_, *rope_cs_;
  std::vector<int32_t> seq0_;    // forward() on sequence 0: [n_batch] zeros
  std::vector<int64_t> pos_buf_, rows_buf_;
  // attention(): runs of tokens (first token, count) that share one kernel call.
  struct AttnRun {
    int64_t t, len;
  };
  std::vector<AttnRun> runs_;
  // Prompt attention (KvCache::attend_block): tokens per call, and the fewest query
  // rows (tokens x heads per KV head) worth a call in fp32 (in bf16 every run takes
  // it, single tokens too); the chunk to be tuned on an AMX machine.
  static constexpr int64_t kAttnChunk = 64, kAttnMinRows = 16;
  // Decoding with fewer (token, KV head) jobs than the threads can share evenly
  // (SmolLM2: 3 KV heads on 2 threads) and a cache of at least kSplitKeys keys: each
  // job's keys in n_threads ranges, one task each, combined by their softmax stats.
  static constexpr int64_t kSplitKeys = 512;
  std::vector<float> part_out_, part_stats_;
  std::vector<float> inv_freq_;
  std::map<std::string, int> requantized_;
  // Activation statistics (imatrix): the names of the tensors behind each matmul
  // input, per layer: [0] Q/K/V, [1] attention output, [2] gate/up, [3] down.
  quant::Imatrix* stats_ = nullptr;
  std::vector<std::array<std::vector<std::string>, 4>> layer_inputs_;
  std::string output_name_;
  void record(const std::vector<std::string>& names, const float* x, int64_t n, int64_t ld, int64_t cols);
};

}  // namespace halfbyte::model
