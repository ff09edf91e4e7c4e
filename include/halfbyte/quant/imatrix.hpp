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
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace halfbyte::quant {

struct ImatrixEntry {
  std::vector<double> sum2;  // per input column: sum of x_j^2
  double count = 0.0;        // tokens summed
  // sum2 / count as float (zeros for count 0).
  std::vector<float> importance() const;
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight tensor name
  int64_t chunk_count = 0, chunk_size = 0;
  std::vector<std::string> datasets;            // names of the calibration texts
};

// Throws Error(Io) for a missing file, Error(Format) for a GGUF file that is not an
// imatrix (names the tensor or key at fault).
Imatrix load_imatrix(const std::string& path);
// Written to a temporary name and renamed (io::GgufWriter).
void save_imatrix(const std::string& path, const Imatrix& m);

}  // namespace halfbyte::quant
