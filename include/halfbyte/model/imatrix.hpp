// Collecting an importance matrix (quant/imatrix.hpp) on calibration text, as
// llama.cpp's llama-imatrix does: the text is tokenized (BOS first if the model
// adds one) and cut into chunks of n_ctx tokens (a partial last chunk is dropped);
// each chunk runs from an empty cache with its first token replaced by BOS, and
// every matmul's input activations of every token are summed (x_j^2 per column).
//
//   auto m = halfbyte::model::Model::load("model-f16.gguf", {.n_ctx = 512});
//   halfbyte::quant::Imatrix im = halfbyte::model::collect_imatrix(*m, text, {});
//   halfbyte::quant::save_imatrix("model.imatrix", im);
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "halfbyte/quant/imatrix.hpp"

namespace halfbyte::model {

class Model;

struct ImatrixOptions {
  int64_t n_ctx = 512;
  int64_t max_chunks = 0;  // 0: every whole chunk of the text
  std::string dataset;     // recorded in the file (imatrix.datasets), e.g. the text's name
  // Also the sum of x x^T per matrix input, for GPTQ (quant/gptq.hpp): n_in^2 floats
  // per distinct input (SmolLM2-135M: 400 MB), a file as large.
  bool covariance = false;
  // After each chunk with (chunks done, chunks in all); return false to stop early
  // (what was collected so far is returned).
  std::function<bool(int64_t done, int64_t total)> progress;
};

// `m` must have been loaded with n_ctx >= opts.n_ctx. Throws Error(InvalidArgument)
// if the text has fewer than n_ctx tokens.
quant::Imatrix collect_imatrix(Model& m, const std::string& text, const ImatrixOptions& opts);

}  // namespace halfbyte::model
