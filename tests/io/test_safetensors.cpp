// safetensors: tiny files written here from the format's definition (u64
// little-endian header length, JSON header, data). Regression tests for what the
// fuzzer (tests/fuzz/fuzz_safetensors.cpp) found; the loaders' behaviour on real
// models is tested in tests/python/test_safetensors.py.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "halfbyte/io/gguf.hpp"
#include "halfbyte/io/model_file.hpp"

using namespace halfbyte;
using namespace halfbyte::io;

namespace {

// A folder under /tmp holding model.safetensors, removed when the test ends.
struct TmpModel {
  std::filesystem::path dir;
  TmpModel(const std::string& name, const std::string& header, const std::vector<uint8_t>& data) {
    dir = std::filesystem::temp_directory_path() /
          ("halfbyte_test_safetensors_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string h = header;
    while (h.size() % 8 != 0) h += ' ';
    std::ofstream out(dir / "model.safetensors", std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(char(uint64_t(h.size()) >> (8 * i)));
    out.write(h.data(), std::streamsize(h.size()));
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
  }
  ~TmpModel() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

std::vector<uint8_t> floats(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

}  // namespace

// Found with the fuzz_safetensors harness: a tensor with no elements could pass
// sizes whose product overflows (GgufTensorInfo::numel: undefined behaviour), and
// a scalar or a 5-D tensor gave shapes GGUF has no word for (an empty ne, read as
// ne[0] by the loaders). Valid safetensors all: the file still opens, a scalar as
// [1], the others left out.
TEST_CASE("safetensors: tensors keep GGUF's shapes (scalars, empty and 5-D tensors)", "[safetensors]") {
  const TmpModel m("shapes",
                   R"({"__metadata__":{"format":"pt"},)"
                   R"("logit_scale":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                   R"("empty":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},)"
                   R"("empty_big":{"dtype":"F32","shape":[0,9007199254740992,9007199254740992],"data_offsets":[4,4]},)"
                   R"("five_dims":{"dtype":"F32","shape":[1,1,1,1,2],"data_offsets":[4,12]},)"
                   R"("weight":{"dtype":"F32","shape":[2,3],"data_offsets":[12,36]}})",
                   floats({2.5f, 1, 2, 0, 1, 2, 3, 4, 5}));
  const GgufFile f = open_safetensors_tensors(m.dir.string());
  REQUIRE(f.tensors().size() == 2);
  const GgufTensorInfo* scale = f.find_tensor("logit_scale");
  REQUIRE(scale != nullptr);
  REQUIRE(scale->ne == std::vector<int64_t>{1});
  REQUIRE(scale->nbytes == 4);
  float v;
  std::memcpy(&v, f.data(*scale), 4);
  REQUIRE(v == 2.5f);
  const GgufTensorInfo* w = f.find_tensor("weight");
  REQUIRE(w != nullptr);
  REQUIRE(w->ne == std::vector<int64_t>{3, 2});
  REQUIRE(w->nbytes == 24);
  for (const char* gone : {"empty", "empty_big", "five_dims"}) REQUIRE(f.find_tensor(gone) == nullptr);
}
