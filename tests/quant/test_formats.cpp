// Block formats: names, sizes, and byte-exact golden blocks worked out by hand
// from the GGUF specification (ggml's block_q4_0 / block_q4_1 / block_q8_0 and
// their reference quantizers), not produced by this code.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "halfbyte/quant/qmatrix.hpp"
#include "test_util.hpp"

using namespace halfbyte;
using namespace halfbyte::quant;
using halfbyte::test::from_hex;

namespace {

std::vector<uint8_t> quantize_rtn(const Format& f, const std::vector<float>& x) {
  std::vector<uint8_t> out(row_bytes(f, int64_t(x.size())));
  QuantizeOptions o;
  o.method = Method::RTN;
  quantize_row(f, x.data(), int64_t(x.size()), out.data(), o);
  return out;
}

std::vector<float> dequant(const Format& f, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(f, bytes.data(), n, y.data());
  return y;
}

}  // namespace

TEST_CASE("format names parse and print", "[formats]") {
  for (const char* name : {"q4_0", "q4_1", "q8_0", "int4_g32", "int4_g64", "int4_g128", "int4a_g32",
                           "int4a_g64", "int4a_g128", "int4_g32_bf16", "int4a_g128_bf16"}) {
    INFO(name);
    REQUIRE(Format::parse(name).name() == name);
  }
  REQUIRE(Format::parse("Q4_0") == Format::q4_0());
  REQUIRE(Format::parse("int4_g64_fp16") == Format::int4(64));
  for (const char* bad : {"", "q4", "q5_0", "int4_g16", "int4_g", "int4_g64_bf", "int4a_g256", "q4_0 "}) {
    INFO("'" << bad << "'");
    REQUIRE_THROWS_AS(Format::parse(bad), Error);
    try {
      Format::parse(bad);
    } catch (const Error& e) {
      REQUIRE(e.kind() == ErrorKind::InvalidArgument);
      REQUIRE_THAT(e.what(), Catch::Contains("unknown quantization format"));
    }
  }
  REQUIRE_THROWS_AS(Format::int4(48), Error);
}

TEST_CASE("block sizes and bits per weight", "[formats]") {
  REQUIRE(Format::q4_0().block_bytes() == 18);
  REQUIRE(Format::q4_1().block_bytes() == 20);
  REQUIRE(Format::q8_0().block_bytes() == 34);
  REQUIRE(Format::q4_0().bits_per_weight() == 4.5);
  REQUIRE(Format::q4_1().bits_per_weight() == 5.0);
  REQUIRE(Format::q8_0().bits_per_weight() == 8.5);
  REQUIRE(Format::int4(128).block_bytes() == 66);
  REQUIRE(Format::int4(128).bits_per_weight() == 4.125);
  REQUIRE(Format::int4(64, true).block_bytes() == 36);
  REQUIRE(row_bytes(Format::q4_0(), 4096) == 128 * 18);
  REQUIRE(row_bytes(Format::int4(128), 256) == 2 * 66);
}

TEST_CASE("a row that is not a whole number of blocks is refused clearly", "[formats]") {
  std::vector<float> x(33, 1.0f);
  std::vector<uint8_t> out(64);
  try {
    quantize_row(Format::q4_0(), x.data(), 33, out.data());
    FAIL("no error");
  } catch (const Error& e) {
    REQUIRE(e.kind() == ErrorKind::InvalidArgument);
    REQUIRE_THAT(e.what(), Catch::Contains("33") && Catch::Contains("q4_0 block size 32"));
  }
  REQUIRE_THROWS_AS(row_bytes(Format::int4(64), 96), Error);
  REQUIRE_THROWS_AS(row_bytes(Format::q8_0(), 0), Error);
  REQUIRE_THROWS_AS(QMatrix(Format::q8_0(), 4, 40), Error);
  REQUIRE_THROWS_AS(QMatrix(Format::q8_0(), -1, 32), Error);
}

TEST_CASE("q4_0 golden blocks", "[formats][golden]") {
  const Format f = Format::q4_0();
  SECTION("extreme value negative: d = -8 / -8 = 1") {
    // x[j] = (j mod 16) - 8: nibble j mod 16; byte j = nib(j) | nib(j + 16) << 4.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j % 16 - 8);
    const auto golden = from_hex("003C 00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF");
    REQUIRE(quantize_rtn(f, x) == golden);
    REQUIRE(dequant(f, golden, 32) == x);
  }
  SECTION("extreme value positive: d = 4 / -8 = -0.5 (fp16 0xB800)") {
    // q = trunc(x / d + 8.5): 4 -> 0, -3.5 -> 15, 0 -> 8, 1 -> 6, 2 -> 4, -1 -> 10.
    std::vector<float> x(32, 0.0f);
    x[0] = 4.0f;
    x[1] = -3.5f;
    x[3] = 1.0f;
    x[16] = 2.0f;
    x[17] = -1.0f;
    const auto golden = from_hex("00B8 40 AF 88 86 88 88 88 88 88 88 88 88 88 88 88 88");
    REQUIRE(quantize_rtn(f, x) == golden);
    REQUIRE(dequant(f, golden, 32) == x);
  }
  SECTION("all zero: d = 0 / -8 = -0 (fp16 0x8000, as ggml stores it), every nibble 8") {
    std::vector<float> x(32, 0.0f);
    REQUIRE(quantize_rtn(f, x) == from_hex("0080" + std::string(32, '8')));
  }
}

TEST_CASE("q4_1 golden block", "[formats][golden]") {
  // x[j] = 2 + 0.25 (j mod 16): min 2 (fp16 0x4000), d = 3.75 / 15 = 0.25 (0x3400).
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = 2.0f + 0.25f * float(j % 16);
  const auto golden = from_hex("0034 0040 00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF");
  REQUIRE(quantize_rtn(Format::q4_1(), x) == golden);
  REQUIRE(dequant(Format::q4_1(), golden, 32) == x);
}

TEST_CASE("q8_0 golden block", "[formats][golden]") {
  // x[j] = 8 j - 127: amax 127, d = 1 (0x3C00), q = x as int8.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(8 * j - 127);
  const auto golden = from_hex(
      "003C 81 89 91 99 A1 A9 B1 B9 C1 C9 D1 D9 E1 E9 F1 F9 01 09 11 19 21 29 31 39 41 49 51 59 61 69 71 79");
  REQUIRE(quantize_rtn(Format::q8_0(), x) == golden);
  REQUIRE(dequant(Format::q8_0(), golden, 32) == x);
}

TEST_CASE("grouped int4 golden blocks (consecutive-pair nibble order)", "[formats][golden]") {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j % 16 - 8);
  // Same codes as the first q4_0 block, but byte j holds elements 2j and 2j + 1.
  const std::string nibbles = "10 32 54 76 98 BA DC FE 10 32 54 76 98 BA DC FE";
  SECTION("fp16 scale") {
    const auto golden = from_hex("003C " + nibbles);
    REQUIRE(quantize_rtn(Format::int4(32), x) == golden);
    REQUIRE(dequant(Format::int4(32), golden, 32) == x);
  }
  SECTION("bf16 scale: 1.0 is 0x3F80") {
    const auto golden = from_hex("803F " + nibbles);
    REQUIRE(quantize_rtn(Format::int4(32, false, ScaleType::BF16), x) == golden);
  }
  SECTION("affine: min -8 (0xC800), d = 15 / 15 = 1") {
    const auto golden = from_hex("003C 00C8 " + nibbles);
    REQUIRE(quantize_rtn(Format::int4(32, true), x) == golden);
    REQUIRE(dequant(Format::int4(32, true), golden, 32) == x);
  }
  SECTION("group 64 is one block with one scale") {
    std::vector<float> x64(64);
    for (int j = 0; j < 64; ++j) x64[size_t(j)] = float(j % 16 - 8);
    const auto golden = from_hex("003C " + nibbles + nibbles);
    REQUIRE(quantize_rtn(Format::int4(64), x64) == golden);
  }
}

TEST_CASE("QMatrix::from_bytes checks the byte count", "[formats]") {
  std::vector<uint8_t> bytes(2 * 18);
  REQUIRE(QMatrix::from_bytes(Format::q4_0(), 2, 32, bytes.data(), bytes.size()).nbytes() == 36);
  REQUIRE_THROWS_WITH(QMatrix::from_bytes(Format::q4_0(), 2, 32, bytes.data(), 35),
                      Catch::Contains("35 bytes given") && Catch::Contains("needs 2 x 18"));
}
