// GGUF reader: real files written by llama.cpp's gguf-py (the shared tokenizer
// vocabularies), files built byte by byte here, and hostile variants of them.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"

using namespace halfbyte;
using namespace halfbyte::io;

namespace {

// Minimal GGUF serializer for tests (independent of the reader).
struct Builder {
  std::vector<uint8_t> b;
  template <class T>
  Builder& pod(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Builder& str(const std::string& s) {
    pod<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  void pad(size_t a) {
    while (b.size() % a) b.push_back(0);
  }
};

std::string write_tmp(const std::vector<uint8_t>& bytes, const std::string& name) {
  const std::string path = "/tmp/halfbyte_test_" + name + ".gguf";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return path;
}

// A valid v3 file: metadata of every type and two tensors (f32 ne = {2, 3}, q8_0 ne = {32}).
std::vector<uint8_t> sample(uint64_t* kv_count_pos = nullptr, uint64_t* tensor_off_pos = nullptr) {
  Builder g;
  g.pod<uint32_t>(0x46554747u).pod<uint32_t>(3).pod<uint64_t>(2);
  if (kv_count_pos) *kv_count_pos = g.b.size();
  g.pod<uint64_t>(9);
  g.str("general.architecture").pod<uint32_t>(8).str("llama");
  g.str("u8").pod<uint32_t>(0).pod<uint8_t>(200);
  g.str("i16").pod<uint32_t>(3).pod<int16_t>(-7);
  g.str("u32").pod<uint32_t>(4).pod<uint32_t>(4000000000u);
  g.str("f32").pod<uint32_t>(6).pod<float>(0.5f);
  g.str("bool").pod<uint32_t>(7).pod<uint8_t>(1);
  g.str("i64").pod<uint32_t>(11).pod<int64_t>(-5);
  g.str("f64").pod<uint32_t>(12).pod<double>(1e-6);
  g.str("arr").pod<uint32_t>(9).pod<uint32_t>(8).pod<uint64_t>(2).str("a").str("bc");
  g.str("w").pod<uint32_t>(2).pod<uint64_t>(2).pod<uint64_t>(3).pod<uint32_t>(0).pod<uint64_t>(0);
  g.str("q").pod<uint32_t>(1).pod<uint64_t>(32).pod<uint32_t>(8);
  if (tensor_off_pos) *tensor_off_pos = g.b.size();
  g.pod<uint64_t>(32);
  g.pad(32);
  for (int i = 0; i < 6; ++i) g.pod<float>(float(i));
  g.pad(32);
  g.pod<uint16_t>(0x3C00);
  for (int i = 0; i < 32; ++i) g.pod<int8_t>(int8_t(i - 16));
  return g.b;
}

void expect_format_error(const std::vector<uint8_t>& bytes, const std::string& name, const std::string& needle) {
  const std::string path = write_tmp(bytes, name);
  try {
    GgufFile::open(path);
    FAIL("no error for " << name);
  } catch (const Error& e) {
    INFO(name << ": " << e.what());
    REQUIRE(e.kind() == ErrorKind::Format);
    REQUIRE_THAT(e.what(), Catch::Contains(path) && Catch::Contains(needle));
  }
  std::remove(path.c_str());
}

}  // namespace

TEST_CASE("gguf: metadata of every type and tensor extents", "[gguf]") {
  const std::string path = write_tmp(sample(), "sample");
  const GgufFile f = GgufFile::open(path);
  REQUIRE(f.version() == 3);
  REQUIRE(f.get_string("general.architecture", "") == "llama");
  REQUIRE(f.get("u8").as_int("u8") == 200);
  REQUIRE(f.get("i16").as_int("i16") == -7);
  REQUIRE(f.get("u32").as_int("u32") == 4000000000LL);
  REQUIRE(f.get("f32").as_float("f32") == 0.5);
  REQUIRE(f.get("bool").as_bool("bool"));
  REQUIRE(f.get("i64").as_int("i64") == -5);
  REQUIRE(f.get("f64").as_float("f64") == 1e-6);
  const GgufArray& arr = f.get("arr").as_array("arr");
  REQUIRE(arr.items.size() == 2);
  REQUIRE(arr.items[1].as_string("arr") == "bc");
  REQUIRE(f.get_int("missing", 42) == 42);
  REQUIRE_THROWS_WITH(f.get("f32").as_string("f32"), Catch::Contains("'f32' is f32, expected string"));
  REQUIRE_THROWS_WITH(f.get("absent"), Catch::Contains("'absent' is missing"));

  const GgufTensorInfo& w = f.tensor("w");
  REQUIRE(w.ne == std::vector<int64_t>{2, 3});
  REQUIRE(w.type == GgmlType::F32);
  REQUIRE(w.nbytes == 24);
  float v[6];
  std::memcpy(v, f.data(w), 24);
  REQUIRE(v[5] == 5.0f);
  const GgufTensorInfo& q = f.tensor("q");
  REQUIRE(q.type == GgmlType::Q8_0);
  REQUIRE(q.nbytes == 34);
  REQUIRE(int8_t(f.data(q)[2 + 31]) == 15);
  std::remove(path.c_str());
}

TEST_CASE("gguf: reads llama.cpp's vocabulary files", "[gguf]") {
  const std::string dir = HALFBYTE_SHARED_DIR "/tokenizer-tests/";
  std::ifstream probe(dir + "ggml-vocab-gpt-2.gguf");
  if (!probe) {
    WARN("skipped: " << dir << " not found");
    return;
  }
  const GgufFile f = GgufFile::open(dir + "ggml-vocab-gpt-2.gguf");
  REQUIRE(f.get_string("tokenizer.ggml.model", "") == "gpt2");
  REQUIRE(f.get("tokenizer.ggml.tokens").as_array("tokens").items.size() == 50257);
  REQUIRE(f.get("tokenizer.ggml.merges").as_array("merges").items.size() == 50000);
  REQUIRE(f.tensors().empty());
  const GgufFile s = GgufFile::open(dir + "ggml-vocab-llama-spm.gguf");
  REQUIRE(s.get_string("tokenizer.ggml.model", "") == "llama");
  REQUIRE(s.get("tokenizer.ggml.scores").as_array("scores").items.size() == 32000);
}

TEST_CASE("gguf: truncated and hostile files give clear errors", "[gguf]") {
  uint64_t kv_pos = 0, off_pos = 0;
  const auto good = sample(&kv_pos, &off_pos);
  // Truncation at every length up to the end of the tensor table, and in the data.
  for (size_t n = 0; n < good.size(); n += (n < off_pos + 8 ? 1 : 7)) {
    std::vector<uint8_t> t(good.begin(), good.begin() + long(n));
    const std::string path = write_tmp(t, "trunc");
    INFO("truncated to " << n << " bytes");
    REQUIRE_THROWS_AS(GgufFile::open(path), Error);
    std::remove(path.c_str());
  }
  auto patched = [&](size_t pos, uint64_t v) {
    auto b = good;
    std::memcpy(b.data() + pos, &v, 8);
    return b;
  };
  expect_format_error(patched(kv_pos, uint64_t(1) << 60), "huge_kv", "metadata count");
  expect_format_error(patched(kv_pos - 8, uint64_t(1) << 60), "huge_tensors", "tensor count");
  expect_format_error(patched(off_pos, 1ull << 40), "bad_offset", "extends past the end of the file");
  expect_format_error(patched(off_pos, 33), "misaligned", "not aligned");
  auto bad_magic = good;
  bad_magic[0] = 'X';
  expect_format_error(bad_magic, "magic", "not a GGUF file");
  auto bad_version = good;
  bad_version[4] = 9;
  expect_format_error(bad_version, "version", "version 9");
  // A huge string length inside the metadata.
  auto huge_str = good;
  const uint64_t big = uint64_t(1) << 62;
  std::memcpy(huge_str.data() + 24, &big, 8);
  expect_format_error(huge_str, "huge_string", "truncated");
  // An unknown tensor type (the type field sits 8 bytes before the offset).
  auto bad_type = good;
  const uint32_t t = 99;
  std::memcpy(bad_type.data() + off_pos - 4, &t, 4);
  expect_format_error(bad_type, "bad_type", "unknown ggml type 99");
}

TEST_CASE("gguf: a missing file is an I/O error naming the path", "[gguf]") {
  try {
    GgufFile::open("/nonexistent/model.gguf");
    FAIL("no error");
  } catch (const Error& e) {
    REQUIRE(e.kind() == ErrorKind::Io);
    REQUIRE_THAT(e.what(), Catch::Contains("/nonexistent/model.gguf"));
  }
}

namespace {

// A v3 file from raw metadata and tensor-info bytes (counts given), padded to 32,
// then `data` bytes of tensor data.
std::vector<uint8_t> file_of(uint64_t n_tensors, uint64_t n_kv, const Builder& body, size_t data = 0) {
  Builder g;
  g.pod<uint32_t>(0x46554747u).pod<uint32_t>(3).pod<uint64_t>(n_tensors).pod<uint64_t>(n_kv);
  g.b.insert(g.b.end(), body.b.begin(), body.b.end());
  g.pad(32);
  g.b.resize(g.b.size() + data, 0);
  return g.b;
}

}  // namespace

TEST_CASE("gguf: wrong value types and bad tensor shapes give clear errors", "[gguf]") {
  Builder b;
  b.str("flag").pod<uint32_t>(7).pod<uint8_t>(2);
  expect_format_error(file_of(0, 1, b), "bool2", "metadata 'flag': bool value 2 is not 0 or 1");
  b = {};
  b.str("x").pod<uint32_t>(13).pod<uint64_t>(0);
  expect_format_error(file_of(0, 1, b), "type13", "metadata 'x': unknown value type 13");
  b = {};
  b.str("a").pod<uint32_t>(9).pod<uint32_t>(13).pod<uint64_t>(1).pod<uint64_t>(0);
  expect_format_error(file_of(0, 1, b), "elem13", "metadata 'a': unknown array element type 13");
  b = {};
  b.str("deep").pod<uint32_t>(9);
  for (int i = 0; i < 5; ++i) b.pod<uint32_t>(9).pod<uint64_t>(1);  // arrays of arrays ...
  b.pod<uint32_t>(0).pod<uint64_t>(0);
  expect_format_error(file_of(0, 1, b), "deep", "metadata 'deep': arrays nested deeper than 4");
  b = {};
  b.str("a").pod<uint32_t>(9).pod<uint32_t>(0).pod<uint64_t>(uint64_t(1) << 40);
  expect_format_error(file_of(0, 1, b), "huge_array", "array of 1099511627776 u8 does not fit");
  b = {};
  b.str("k").pod<uint32_t>(4).pod<uint32_t>(1).str("k").pod<uint32_t>(4).pod<uint32_t>(2);
  expect_format_error(file_of(0, 2, b), "dup_key", "metadata key 'k' appears twice");
  b = {};
  b.str("general.alignment").pod<uint32_t>(8).str("32");
  expect_format_error(file_of(0, 1, b), "align_str", "general.alignment is string, expected an integer");
  b = {};
  b.str("general.alignment").pod<uint32_t>(10).pod<uint64_t>(~uint64_t(0));
  expect_format_error(file_of(0, 1, b), "align_u64", "general.alignment = 18446744073709551615 is not a power of two");
  b = {};
  b.str("general.alignment").pod<uint32_t>(5).pod<int32_t>(48);
  expect_format_error(file_of(0, 1, b), "align48", "general.alignment = 48 is not a power of two");

  auto tensor = [](Builder& t, const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t off) {
    t.str(name).pod<uint32_t>(uint32_t(ne.size()));
    for (uint64_t n : ne) t.pod(n);
    t.pod(type).pod(off);
  };
  b = {};
  tensor(b, "w", {}, 0, 0);
  expect_format_error(file_of(1, 0, b, 32), "ndims0", "tensor 'w': n_dims = 0 (must be 1..4)");
  b = {};
  tensor(b, "w", {1, 1, 1, 1, 1}, 0, 0);
  expect_format_error(file_of(1, 0, b, 32), "ndims5", "tensor 'w': n_dims = 5 (must be 1..4)");
  b = {};
  tensor(b, "w", {4, 0}, 0, 0);
  expect_format_error(file_of(1, 0, b, 32), "ne0", "tensor 'w': dimension ne[1] = 0 is invalid");
  b = {};
  tensor(b, "w", {uint64_t(1) << 32, uint64_t(1) << 32}, 0, 0);
  expect_format_error(file_of(1, 0, b, 32), "ne_overflow", "tensor 'w': dimension ne[1] = 4294967296 is invalid");
  b = {};
  tensor(b, "q", {33}, 2, 0);
  expect_format_error(file_of(1, 0, b, 32), "block", "tensor 'q': ne[0] = 33 is not a multiple of the q4_0 block size 32");
  b = {};
  tensor(b, "w", {2}, 0, 0);
  tensor(b, "w", {2}, 0, 32);
  expect_format_error(file_of(2, 0, b, 64), "dup_tensor", "tensor name 'w' appears twice");
  b = {};
  tensor(b, "w", {2}, 17, 0);
  expect_format_error(file_of(1, 0, b, 32), "type17", "tensor 'w': unknown ggml type 17");
}

TEST_CASE("gguf: a tensor's byte size cannot wrap around", "[gguf]") {
  // Regression: numel / block * block_bytes was computed in 64 bits, so 2^61 f64
  // (or 2^62 f32) elements came to 0 bytes and passed the extent check.
  Builder b;
  b.str("w").pod<uint32_t>(1).pod<uint64_t>(uint64_t(1) << 61).pod<uint32_t>(28).pod<uint64_t>(0);
  expect_format_error(file_of(1, 0, b, 32), "wrap_f64", "tensor 'w': 2305843009213693952 f64 elements need more bytes");
  b = {};
  b.str("w").pod<uint32_t>(2).pod<uint64_t>(uint64_t(1) << 31).pod<uint64_t>(uint64_t(1) << 31);
  b.pod<uint32_t>(0).pod<uint64_t>(0);
  expect_format_error(file_of(1, 0, b, 32), "wrap_f32", "f32 elements need more bytes than the file's");
  b = {};  // q8_0: 2^62 elements, 2^62 + 2^58 bytes
  b.str("w").pod<uint32_t>(2).pod<uint64_t>(uint64_t(1) << 32).pod<uint64_t>(uint64_t(1) << 30);
  b.pod<uint32_t>(8).pod<uint64_t>(0);
  expect_format_error(file_of(1, 0, b, 32), "wrap_q8", "q8_0 elements need more bytes than the file's");
}

TEST_CASE("gguf: metadata arrays are bounded in count and read in linear time", "[gguf]") {
  // Regression: every array item built its error-message text ("value of
  // '<key>'"), so a long key times many items took quadratic time (here 1 MB x
  // 1M items, a 2 MB file: 1 TB of copying, minutes). It now takes milliseconds.
  {
    const std::string key(1 << 20, 'k');
    const uint64_t n = 1 << 20;
    Builder b;
    b.str(key).pod<uint32_t>(9).pod<uint32_t>(0).pod<uint64_t>(n);
    b.b.resize(b.b.size() + n, 7);
    const std::string path = write_tmp(file_of(0, 1, b), "long_key");
    const auto t0 = std::chrono::steady_clock::now();
    const GgufFile f = GgufFile::open(path);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(f.get(key).as_array("k").items.size() == n);
    CHECK(seconds < 10.0);  // ~0.05 s; generous for sanitizer builds
    std::remove(path.c_str());
  }
  // An array of 2^23 + 1 values (each ~48 bytes in memory, one in the file) is
  // refused before it is read: the file is a hole of 8 MB.
  {
    Builder b;
    b.str("big").pod<uint32_t>(9).pod<uint32_t>(0).pod<uint64_t>((uint64_t(1) << 23) + 1);
    const std::string path = write_tmp(file_of(0, 1, b), "item_cap");
    std::filesystem::resize_file(path, (uint64_t(1) << 23) + 4096);
    try {
      GgufFile::open(path);
      FAIL("no error");
    } catch (const Error& e) {
      REQUIRE(e.kind() == ErrorKind::Format);
      REQUIRE_THAT(e.what(), Catch::Contains(path) &&
                                 Catch::Contains("metadata arrays hold more than 8388608 values in all (at 'big')"));
    }
    std::remove(path.c_str());
  }
  // Key and tensor counts that the (sparse) file could hold but no model has.
  {
    const uint64_t n = (uint64_t(1) << 20) + 1;
    const std::string keys = write_tmp(file_of(0, n, Builder{}), "key_cap");
    std::filesystem::resize_file(keys, 32 + 13 * n);
    expect_format_error(file_of(0, n, Builder{}), "key_cap_small", "metadata count 1048577 exceeds the file size");
    REQUIRE_THROWS_WITH(GgufFile::open(keys), Catch::Contains("metadata count 1048577 is more than the 1048576 keys read"));
    std::remove(keys.c_str());
    const std::string tensors = write_tmp(file_of(n, 0, Builder{}), "tensor_cap");
    std::filesystem::resize_file(tensors, 32 + 24 * n);
    REQUIRE_THROWS_WITH(GgufFile::open(tensors),
                        Catch::Contains("tensor count 1048577 is more than the 1048576 tensors read"));
    std::remove(tensors.c_str());
  }
}
