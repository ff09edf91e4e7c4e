// The repacked layout is a lossless permutation of the file layout.
#include "kernel_test_util.hpp"

using namespace halfbyte;
using namespace halfbyte::test;

TEST_CASE("pack / unpack round trip is exact for every format and odd row counts", "[pack]") {
  uint64_t seed = 77;
  for (const char* name : {"q4_0", "q4_1", "q8_0", "int4_g32", "int4_g64", "int4_g128", "int4a_g32",
                           "int4a_g128", "int4_g64_bf16", "int4a_g128_bf16"}) {
    const quant::Format f = quant::Format::parse(name);
    for (int64_t N : {1, 15, 16, 17, 45}) {
      for (int64_t K : {f.block_size(), 3 * f.block_size(), 8 * f.block_size()}) {
        const quant::QMatrix q = random_weights(f, N, K, seed++, true);
        const ops::PackedMatrix p = ops::PackedMatrix::pack(q);
        INFO(name << " N=" << N << " K=" << K);
        REQUIRE(p.nbytes() == size_t((N + 15) / 16) * 16 * q.row_bytes());
        const quant::QMatrix back = p.unpack();
        REQUIRE(back.format() == q.format());
        REQUIRE(back.nbytes() == q.nbytes());
        REQUIRE(std::memcmp(back.data(), q.data(), q.nbytes()) == 0);
      }
    }
  }
}

TEST_CASE("packed layout: 16 rows x 4 consecutive k per 64-byte chunk", "[pack]") {
  // Row r, weight k of a q4_0 sub-block: chunk (k mod 16) / 4, row r, byte k mod 4,
  // low nibble for k < 16, high nibble for k >= 16 (docs in ops/packed.hpp).
  const quant::QMatrix q = random_weights(quant::Format::q4_0(), 16, 32, 5, false);
  const ops::PackedMatrix p = ops::PackedMatrix::pack(q);
  const uint8_t* sub = p.data() + 32;  // after 16 fp16 scales
  for (int r = 0; r < 16; ++r) {
    const uint8_t* blk = q.row(r);
    REQUIRE(std::memcmp(p.data() + 2 * r, blk, 2) == 0);
    for (int k = 0; k < 32; ++k) {
      const int file_code = k < 16 ? (blk[2 + k] & 15) : (blk[2 + k - 16] >> 4);
      const uint8_t byte = sub[size_t((k % 16) / 4) * 64 + size_t(r) * 4 + size_t(k % 4)];
      REQUIRE(file_code == (k < 16 ? (byte & 15) : (byte >> 4)));
    }
  }
}
