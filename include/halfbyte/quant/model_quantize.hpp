// Whole-model quantization: any model halfbyte reads (GGUF, llama2.c checkpoint,
// HF safetensors folder) in, a GGUF file that halfbyte and llama.cpp both load out.
//
//   halfbyte::quant::ModelQuantizeOptions o;
//   o.type = "q4_k_m";
//   auto table = halfbyte::quant::quantize_model("in.gguf", "out.gguf", o);
//
// Types (o.type, case-insensitive):
//   f32, f16                 every weight matrix in that float type
//   q8_0, q4_0, q4_1, q5_0   every weight matrix in that 32-block format ...
//   q4_k, q6_k               ... or 256-block k-quant, except the output head
//                            (output.weight, or token_embd.weight if the model
//                            ties them) at q6_K for the types below 6 bits, as
//                            llama.cpp does; o.pure keeps it at the type too
//   q4_k_s                   llama.cpp's Q4_K_S mix: output head q6_K, attn_v of layers
//                            0-3 and ffn_down of the first eighth of the layers q5_K,
//                            everything else q4_K
//   q4_k_m                   a mix in the spirit of llama.cpp's Q4_K_M (mix_type()):
//                            token_embd and output at q6_K, attn_v and ffn_down at
//                            q6_K in the first and last eighth of the layers and every
//                            third layer between, everything else q4_K
// Which tensors: "weight matrices" are the 2-D tensors named *.weight; every other
// tensor (norms, biases: 1-D) is written as f32 (integer tensors unchanged). A row
// length that is not a multiple of the block falls back: q4_K -> q5_0 -> f16,
// q5_K -> q5_1 -> f16, q6_K -> q8_0 -> f16, 32-blocks -> f16 (as llama.cpp does;
// the table says so).
// A tensor already stored in its target type is copied byte for byte. Other
// quantized input tensors are dequantized first (one warning lists them).
//
// HF safetensors input keeps Q and K in HF's rotary layout; the output permutes
// their rows to GGUF's (as llama.cpp's converter does) so llama.cpp reads it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace halfbyte::quant {

// One row of the final table: what a tensor became.
struct TensorQuantInfo {
  std::string name;
  std::string source_type;     // ggml type name in the input: "f16", "q4_1", ...
  std::string type;            // ggml type name written: "q4_K", "f32", ...
  std::vector<int64_t> shape;  // GGUF order: shape[0] is the row length
  uint64_t bytes = 0;          // bytes of the tensor in the output
  // sqrt(sum (x - x')^2 / sum x^2): x the input tensor (dequantized if it was
  // quantized), x' the output decoded. 0 for tensors copied exactly.
  double rel_rms_error = 0.0;
};

struct ModelQuantizeOptions {
  std::string type = "q4_0";
  // An importance matrix file (halfbyte imatrix / llama.cpp's GGUF imatrix): the
  // quantizers minimise the squared error weighted per input column by the mean
  // squared activation seen there. Empty: unweighted.
  std::string imatrix;
  // When the imatrix file also has input covariances (halfbyte imatrix
  // --covariance), quantize the matrices they cover with GPTQ (quant/gptq.hpp):
  // each column's error is compensated by the columns after it, minimising the
  // layer's output error on the calibration activations. false: importance only.
  // The tied token table / output head is never GPTQ'd (it is an embedding too).
  bool gptq = true;
  // A tokenizer for inputs without one (see io::open_model_file).
  std::string tokenizer;
  // Every weight matrix in the type, the output head included (llama.cpp's --pure).
  // No effect on the mixes (q4_k_s, q4_k_m).
  bool pure = false;
  int n_threads = 0;  // 0: halfbyte::num_threads()
  // Called on the calling thread as tensors are processed: tensor `index` of
  // `count` (0-based), its name, the fraction of it done (0..1]. Return false to
  // cancel: Error(Runtime, "<out>: quantize cancelled"), nothing written.
  std::function<bool(size_t index, size_t count, const std::string& name, float fraction)> progress;
  // Warnings (already-quantized input, fallbacks); empty: not reported.
  std::function<void(const std::string& message)> warn;
};

// Quantizes the model at `in` into a GGUF file at `out` (written to a temporary
// name and renamed when complete). Returns one entry per tensor, in file order.
// Checked before any work is done: Error(InvalidArgument) for an unknown type,
// Error(Io) for an output folder that does not exist or a missing input,
// Error(Format) for a malformed one.
std::vector<TensorQuantInfo> quantize_model(const std::string& in, const std::string& out,
                                            const ModelQuantizeOptions& opts = {});

// The accepted type names, in the order listed above.
const std::vector<std::string>& model_quantize_types();

// The ggml type name a weight matrix gets under `type` before any fallback:
// `name` a GGUF tensor name, `n_layer` the model's block count, `tied` whether
// token_embd.weight is also the output head (no output.weight). Throws
// Error(InvalidArgument) for an unknown type.
std::string mix_type(const std::string& type, const std::string& name, int64_t n_layer, bool tied, bool pure);

}  // namespace halfbyte::quant
