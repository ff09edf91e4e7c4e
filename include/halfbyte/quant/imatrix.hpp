// Importance matrices: per input column of each weight matrix, the mean squared
// activation that reached it on calibration text. The quantizers weight the squared
// error of column j by it, which is the expected squared error of the layer's
// output if activations of different columns are uncorrelated:
//   E[(dW x)_i^2] = sum_j dW_ij^2 E[x_j^2].
//
// File format (the GGUF layout of llama.cpp's `llama-imatrix`, so files move both
// ways): a GGUF v3 file with general.type = "imatrix", imatrix.chunk_count (u32),
// imatrix.chunk_size (u32), imatrix.datasets (string array) and per weight matrix W
// two f32 tensors: "W.in_sum2" [n_in] (sum over tokens of x_j^2) and "W.counts" [1]
// (tokens summed). The importance of column j is in_sum2[j] / counts.
//
// Optionally (halfbyte imatrix --covariance) also the whole second moment for GPTQ
// (quant/gptq.hpp): "W.in_cov" f32 [n_in, n_in], the sum over tokens of x x^T.
// Matrices that read the same input (Q, K and V; gate and up) share one: it is
// stored under the first name, and the string array halfbyte.imatrix.cov_shared
// lists pairs (name, name it is stored under). llama.cpp ignores both.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace halfbyte::quant {

struct ImatrixEntry {
  std::vector<double> sum2;  // per input column: sum of x_j^2
  double count = 0.0;        // tokens summed
  // Sum of x x^T over the same tokens, n_in x n_in row-major (symmetric); null if
  // not collected. Shared between the matrices that read the same input.
  std::shared_ptr<std::vector<float>> cov;
  // sum2 / count as float (zeros for count 0).
  std::vector<float> importance() const;
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight tensor name
  int64_t chunk_count = 0, chunk_size = 0;
  std::vector<std::string> datasets;            // names of the calibration texts
  bool covariance = false;                      // collect (and keep) `cov` too
};

// Adds n tokens' activations (row t at x + t * ld, `cols` columns) to e: sum2 and
// count, and cov if `covariance` (allocated on first use). Throws
// Error(InvalidArgument), naming the matrix `name`, if e already has another column count.
void accumulate(ImatrixEntry& e, const std::string& name, const float* x, int64_t n, int64_t ld, int64_t cols,
                bool covariance);

// Throws Error(Io) for a missing file, Error(Format) for a GGUF file that is not an
// imatrix (names the tensor or key at fault).
Imatrix load_imatrix(const std::string& path);
// Written to a temporary name and renamed (io::GgufWriter).
void save_imatrix(const std::string& path, const Imatrix& m);

}  // namespace halfbyte::quant
