#include <catch2/catch.hpp>

#include <cstdint>

#include "halfbyte/core/tensor.hpp"

using namespace halfbyte;

TEST_CASE("TensorView: shapes, strides, contiguity", "[tensor]") {
  float data[24];
  for (int i = 0; i < 24; ++i) data[i] = float(i);
  TensorView<float> v(data, {2, 3, 4});
  REQUIRE(v.ndim() == 3);
  REQUIRE(v.numel() == 24);
  REQUIRE(v.stride(0) == 12);
  REQUIRE(v.stride(2) == 1);
  REQUIRE(v.is_contiguous());
  REQUIRE(v(1, 2, 3) == 23.0f);
  REQUIRE(v.dtype() == DType::F32);

  TensorView<const float> t(data, {4, 6}, {1, 4});  // a 6 x 4 matrix viewed transposed
  REQUIRE_FALSE(t.is_contiguous());
  REQUIRE(t(3, 5) == data[3 + 5 * 4]);

  TensorView<const float> c = TensorView<float>(data, {6, 4});  // T -> const T
  REQUIRE(c.row(2)[1] == 9.0f);

  REQUIRE_THROWS_AS(TensorView<float>(data, {1, 2, 3, 4, 5}), Error);
  REQUIRE_THROWS_AS(TensorView<float>(data, {2, -1}), Error);
  REQUIRE_THROWS_AS(TensorView<float>(data, {2, 3}, {1}), Error);
}

TEST_CASE("Buffer: aligned, movable, sized", "[tensor]") {
  Buffer<float> b(1000);
  REQUIRE(b.size() == 1000);
  REQUIRE(b.nbytes() == 4000);
  REQUIRE(reinterpret_cast<uintptr_t>(b.data()) % kAlignment == 0);
  b[999] = 1.0f;
  Buffer<float> m = std::move(b);
  REQUIRE(b.data() == nullptr);
  REQUIRE(m[999] == 1.0f);
  REQUIRE(m.view({10, 100})(9, 99) == 1.0f);
  REQUIRE_THROWS_AS(m.view({10, 10}), Error);
  Buffer<uint8_t> empty(0);
  REQUIRE(empty.empty());
  REQUIRE_THROWS_AS(Buffer<double>(SIZE_MAX / 4), Error);
}

TEST_CASE("dtype names and sizes", "[tensor]") {
  REQUIRE(dtype_size(DType::BF16) == 2);
  REQUIRE(parse_dtype("f16") == DType::F16);
  REQUIRE_THROWS_WITH(parse_dtype("f64"), Catch::Contains("unknown dtype 'f64'"));
}
