// Llama-family decoder models (Llama, SmolLM2, TinyLlama, Mistral, Qwen2) loaded
// from GGUF, llama2.c checkpoints or HF safetensors folders: load, tokenize,
// evaluate logits, generate text.
//
//   auto m = halfbyte::model::Model::load("SmolLM2-135M-Instruct.Q4_1.gguf");
//   halfbyte::model::SamplingParams sp;  // greedy by default
//   std::string text = m->generate("The capital of France is", sp,
//                                  [](std::string_view piece) { std::cout << piece; return true; });
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace halfbyte::quant {
struct Imatrix;
}

namespace halfbyte::model {

class Tokenizer;

// Architecture as data: every supported model is this graph with these knobs.
struct Config {
  std::string arch;         // GGUF general.architecture, e.g. "llama", "qwen2"
  int64_t n_vocab = 0;
  int64_t n_embd = 0;       // model width D
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;    // < n_head: grouped-query attention
  int64_t head_dim = 0;
  int64_t n_ff = 0;         // SwiGLU hidden width
  int64_t n_ctx_train = 0;  // context length the model was trained for
  int64_t rope_dim = 0;     // dimensions rotated per head (<= head_dim)
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  bool rope_neox = false;   // rotate (i, i + d/2) pairs (HF / Qwen2) instead of (2i, 2i + 1)
  bool qkv_bias = false;    // Qwen2
  bool tied_output = false; // output head shares token_embd
};

struct LoadOptions {
  int64_t n_ctx = 0;        // 0: the model's context length, at most 4096
  int n_threads = 0;        // 0: halfbyte::num_threads()
  int64_t n_batch = 256;    // tokens per forward pass when evaluating a prompt
  // Matmul precision of quantized layers: integer (activations quantized to int8
  // per 32-block, the default) or float (weights dequantized, fp32 activations).
  bool float_matmul = false;
  // KV cache elements: fp16 (half the memory; llama.cpp's default too) or fp32.
  bool kv_f16 = true;
  // A tokenizer file for models that carry none or another one: llama2.c's
  // tokenizer.bin or HF's tokenizer.json. Empty: the model's own (for llama2.c,
  // tokenizer.bin beside the checkpoint).
  std::string tokenizer;
  // Format for weight matrices stored as float (f32, f16, bf16): a halfbyte
  // format name ("q4_0", "q4_1", "q8_0", "int4_g64", ...) or "f32" to keep them
  // float. Empty: q8_0 for llama2.c and safetensors models, float for GGUF ones
  // (a GGUF file's types are taken as chosen). Quantized GGUF tensors are never
  // re-quantized by this option.
  std::string quantize;
  // Called on the loading thread as the weights are prepared, with the fraction
  // done in (0, 1]: after each layer, and with 1 once the model is ready. Return
  // false to cancel: load() then throws Error(ErrorKind::Runtime, "<path>: load
  // cancelled"), freeing everything loaded so far. Empty: no calls.
  std::function<bool(float fraction)> progress;
  // KV-cache slots: independent sequences of n_ctx tokens each that eval_batch()
  // runs together (continuous batching; `halfbyte serve --parallel N`). A slot's
  // cache costs memory only as far as it is filled. eval()/generate() use slot 0.
  int n_seq = 1;
};

// One token of a multi-sequence batch (Model::eval_batch).
struct BatchToken {
  int32_t token = 0;
  int32_t seq = 0;     // KV-cache slot, 0 <= seq < LoadOptions::n_seq
  int64_t pos = 0;     // position in its sequence
  bool logits = false; // return this token's next-token logits
};

struct SamplingParams {
  int max_tokens = 128;
  float temperature = 0.0f;  // 0: greedy
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // 1: off
  float min_p = 0.0f;        // 0: off
  float repeat_penalty = 1.0f;
  int repeat_last_n = 64;
  uint64_t seed = 0;         // with has_seed false, a random seed
  bool has_seed = false;
  std::vector<std::string> stop;  // stop strings (not included in the output)
};

struct GenerateStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prompt_seconds = 0.0, decode_seconds = 0.0;
  double prompt_tps() const { return prompt_seconds > 0 ? double(prompt_tokens) / prompt_seconds : 0.0; }
  double decode_tps() const { return decode_seconds > 0 ? double(generated_tokens) / decode_seconds : 0.0; }
};

// Where a loaded model's memory goes (Model::memory()), in bytes. "Reserved" sizes
// are fixed at load for n_ctx and n_batch; the anonymous ones (KV cache, scratch)
// cost physical memory only as far as they have been used, which the *_resident
// fields report (from /proc/self/pagemap; equal to the reserved size where that
// cannot be read).
struct MemoryReport {
  uint64_t file = 0;             // the model file(s), mapped read-only (page cache, shared)
  uint64_t weights_owned = 0;    // repacked / converted weights, norms, biases: private memory
  uint64_t weights_mapped = 0;   // tensors read in place from the mapping (token embedding rows)
  uint64_t mapped_resident = 0;  // pages of the file mapping(s) resident in this process now
  uint64_t kv_cache = 0;         // reserved for n_ctx tokens (fp16 or fp32)
  uint64_t kv_cache_resident = 0;
  uint64_t scratch = 0;          // activations for n_batch tokens and the logits
  uint64_t scratch_resident = 0;
  uint64_t tokenizer = 0;        // vocabulary and lookup tables (estimated from their sizes)
  // What the model holds in RAM now (weights_owned + mapped_resident +
  // kv_cache_resident + scratch_resident + tokenizer).
  uint64_t resident() const noexcept {
    return weights_owned + mapped_resident + kv_cache_resident + scratch_resident + tokenizer;
  }
  // At most, with the whole context and batch in use and every mapped weight read.
  uint64_t reserved() const noexcept { return weights_owned + weights_mapped + kv_cache + scratch + tokenizer; }
};

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// The prompt text of a conversation in a model's chat template (the GGUF's
// tokenizer.chat_template), ending with the assistant's turn opened when
// add_generation_prompt. Templates are recognised, not run as Jinja: ChatML
// (SmolLM2, Qwen2) with the default system message the template inserts.
// Throws Error(Unsupported) for another template or none, Error(InvalidArgument)
// for an unknown role.
std::string render_chat(const std::string& chat_template, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt = true);

// Receives each piece of generated text as it comes (whole UTF-8 characters);
// return false to stop.
using TokenCallback = std::function<bool(std::string_view piece)>;

class Model {
 public:
  // Throws Error(Io) for a missing file, Error(Format) for a malformed one,
  // Error(Unsupported) for an architecture or tensor type not handled.
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {});
  virtual ~Model();

  const Config& config() const noexcept;
  const Tokenizer& tokenizer() const noexcept;
  int64_t n_ctx() const noexcept;
  int64_t position() const noexcept;  // tokens in the KV cache

  // Forgets the KV cache (position 0).
  void reset();
  // Feeds tokens after the ones already in the cache and returns their logits:
  // [n_vocab] for the last token, or [tokens.size() * n_vocab] with all_logits.
  // Throws Error(InvalidArgument) if the context would overflow or an id is out of range.
  std::vector<float> eval(const std::vector<int32_t>& tokens, bool all_logits = false);

  // Runs tokens of several sequences in one forward pass: each weight matrix is
  // read once for all of them (one GEMM), which is what makes serving N streams
  // cheaper than N single streams. A token at position p of slot s attends to that
  // slot's positions [0, p], which must have been fed before (in an earlier call or
  // earlier in this batch); feeding position p again overwrites it (rewind). Fills
  // `logits` with one row of n_vocab per token marked .logits, in batch order.
  // Batches larger than LoadOptions::n_batch run as several passes. Does not move
  // position() (slot 0's count for eval()). Throws Error(InvalidArgument) for a
  // slot, position or token id out of range.
  void eval_batch(const std::vector<BatchToken>& batch, std::vector<float>& logits);
  int n_seq() const noexcept;
  // Returns slot `seq`'s KV-cache memory to the system (its contents are lost; the
  // next token fed to it must be at position 0). A server calls it when a request
  // ends, so that an idle process holds no cache. Throws for a slot out of range.
  void release_slot(int seq);
  // Copies positions [0, n) of slot `from`'s KV cache into slot `to`: a prompt
  // that starts with tokens another sequence has already been fed need not be
  // computed again (the copied keys and values are exactly what feeding them would
  // store). Throws for slots or n out of range.
  void copy_slot_prefix(int from, int to, int64_t n);

  // Text in, text out (without the prompt). `chat` wraps the prompt in the model's
  // chat template (ChatML for SmolLM2/Qwen2 style models). Starts from an empty cache.
  std::string generate(const std::string& prompt, const SamplingParams& params, const TokenCallback& on_piece = {},
                       GenerateStats* stats = nullptr, bool chat = false);

  MemoryReport memory() const;

  // render_chat() with this model's template. Tokenize the result with
  // parse_special (tokenizer().encode(text, true, true)) so that the markers
  // become their special tokens.
  std::string chat_prompt(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;

  // While `m` is set (not null), every forward pass adds the squared input
  // activations of each weight matrix to m->entries[tensor name] (sum over tokens
  // of x_j^2 per input column, and the token count): what `halfbyte imatrix`
  // collects for importance-weighted quantization (quant/imatrix.hpp). Tensors
  // fused at load (Q/K/V, gate/up) share their input and get the same sums.
  void collect_activations(quant::Imatrix* m) noexcept;

  std::vector<int32_t> tokenize(std::string_view text, bool add_special = true) const;
  std::string detokenize(const std::vector<int32_t>& ids) const;

 private:
  Model();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halfbyte::model
