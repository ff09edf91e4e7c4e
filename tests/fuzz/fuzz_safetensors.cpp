// safetensors: the input is <scratch>/safetensors/model.safetensors (a folder of
// its own); io::open_safetensors_tensors on it, then every tensor's shape, byte
// size and extent (check_file), and the first and last rows of each F32, F16 and
// BF16 tensor converted to float (model::tensor_row_to_float), which reads the
// data where the tensor says it is.
#include <vector>

#include "fuzz_util.hpp"
#include "halfbyte/io/model_file.hpp"
#include "model/linear.hpp"

using namespace halfbyte;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = fuzz::Scratch::get().subdir("safetensors");
  const std::string path = fuzz::Scratch::get().write("safetensors/model.safetensors", data, size);
  try {
    const io::GgufFile f = io::open_safetensors_tensors(path);
    fuzz::note("open");
    fuzz::check_file(f);
    HB_FUZZ_CHECK(f.format() == "safetensors");
    std::vector<float> row;
    for (const io::GgufTensorInfo& t : f.tensors()) {
      HB_FUZZ_CHECK(t.type == io::GgmlType::F32 || t.type == io::GgmlType::F16 || t.type == io::GgmlType::BF16);
      const int64_t rows = t.numel() / t.ne[0];
      row.assign(size_t(t.ne[0]), 0.0f);
      model::tensor_row_to_float(f, t, 0, row.data());
      model::tensor_row_to_float(f, t, rows - 1, row.data());
    }
    // The same folder opened as a folder finds the same file.
    HB_FUZZ_CHECK(io::open_safetensors_tensors(dir).tensors().size() == f.tensors().size());
  } catch (const Error& e) {
    fuzz::note("open", &e);
  }
  return 0;
}
