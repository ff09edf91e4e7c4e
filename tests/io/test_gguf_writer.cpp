// GGUF writer: round trips through the reader (every metadata type, tensors of
// several ggml types and ranks, alignments), the exact bytes of a small file built
// independently, refused values and tensors, and the temp-file-then-rename
// behaviour (errors and cancellation leave nothing behind).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"
#include "halfbyte/io/gguf_writer.hpp"

using namespace halfbyte;
using namespace halfbyte::io;
namespace fs = std::filesystem;

namespace {

GgufValue u(GgufType t, uint64_t v) { return GgufValue{t, v}; }
GgufValue i(GgufType t, int64_t v) { return GgufValue{t, v}; }
GgufValue f(GgufType t, double v) { return GgufValue{t, v}; }
GgufValue s(std::string v) { return GgufValue{GgufType::STRING, std::move(v)}; }
GgufValue arr(GgufType et, std::vector<GgufValue> items) {
  auto a = std::make_shared<GgufArray>();
  a->type = et;
  a->items = std::move(items);
  return GgufValue{GgufType::ARRAY, std::move(a)};
}

// The reader keeps unsigned types as uint64 and signed ones as int64.
bool same(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type) return false;
  if (a.type == GgufType::ARRAY) {
    const GgufArray &x = a.as_array("a"), &y = b.as_array("b");
    if (x.type != y.type || x.items.size() != y.items.size()) return false;
    for (size_t k = 0; k < x.items.size(); ++k)
      if (!same(x.items[k], y.items[k])) return false;
    return true;
  }
  if (a.type == GgufType::F32) return float(a.as_float("a")) == float(b.as_float("b"));
  if (a.type == GgufType::F64) return a.as_float("a") == b.as_float("b");
  if (a.is_integer()) {
    const auto *ua = std::get_if<uint64_t>(&a.v), *ub = std::get_if<uint64_t>(&b.v);
    if (ua && ub) return *ua == *ub;
    return a.as_int("a") == b.as_int("b");
  }
  return a.v == b.v;
}

std::string tmp_path(const std::string& name) { return (fs::temp_directory_path() / ("halfbyte_writer_" + name)).string(); }

// Entries of the file's directory whose names start with `<file name>.tmp-`.
int temp_files_of(const std::string& path) {
  const fs::path p(path);
  const std::string prefix = p.filename().string() + ".tmp-";
  int n = 0;
  for (const auto& e : fs::directory_iterator(p.parent_path()))
    if (e.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::map<std::string, GgufValue> every_type() {
  std::map<std::string, GgufValue> m;
  m["general.architecture"] = s("llama");
  m["t.u8"] = u(GgufType::U8, 255);
  m["t.i8"] = i(GgufType::I8, -128);
  m["t.u16"] = u(GgufType::U16, 65535);
  m["t.i16"] = i(GgufType::I16, -32768);
  m["t.u32"] = u(GgufType::U32, 4000000000u);
  m["t.i32"] = i(GgufType::I32, std::numeric_limits<int32_t>::min());
  m["t.u64"] = u(GgufType::U64, std::numeric_limits<uint64_t>::max());
  m["t.i64"] = i(GgufType::I64, std::numeric_limits<int64_t>::min());
  m["t.f32"] = f(GgufType::F32, 0.1);  // stored as the float nearest 0.1
  m["t.f64"] = f(GgufType::F64, 0.1);
  m["t.bool"] = GgufValue{GgufType::BOOL, true};
  m["t.string"] = s(std::string("h\xc3\xa9llo\0world", 12));
  m["t.empty_string"] = s("");
  m["t.arr_i32"] = arr(GgufType::I32, {i(GgufType::I32, -1), i(GgufType::I32, 7)});
  m["t.arr_str"] = arr(GgufType::STRING, {s("a"), s(""), s("bc")});
  m["t.arr_f32"] = arr(GgufType::F32, {f(GgufType::F32, 1.5), f(GgufType::F32, -0.25)});
  m["t.arr_bool"] = arr(GgufType::BOOL, {GgufValue{GgufType::BOOL, false}});
  m["t.arr_empty"] = arr(GgufType::U64, {});
  m["t.arr_nested"] = arr(GgufType::ARRAY, {arr(GgufType::U8, {u(GgufType::U8, 1)}), arr(GgufType::STRING, {s("x")})});
  return m;
}

}  // namespace

TEST_CASE("gguf writer: every metadata type and several tensor types round-trip through the reader", "[gguf][writer]") {
  const auto meta = every_type();
  std::vector<float> w32(2 * 3);
  for (size_t k = 0; k < w32.size(); ++k) w32[k] = float(k) - 2.5f;
  std::vector<uint8_t> q40(2 * 2 * 18), q8(34), f16(2 * 3 * 4 * 2), i8(2 * 1 * 1 * 3), q4k(144);
  for (size_t k = 0; k < q40.size(); ++k) q40[k] = uint8_t(k * 7);
  for (size_t k = 0; k < q8.size(); ++k) q8[k] = uint8_t(k + 1);
  for (size_t k = 0; k < f16.size(); ++k) f16[k] = uint8_t(k * 3);
  for (size_t k = 0; k < i8.size(); ++k) i8[k] = uint8_t(250 - k);
  for (size_t k = 0; k < q4k.size(); ++k) q4k[k] = uint8_t(k ^ 0x5a);

  GgufWriter w;
  w.set(meta);
  w.add_tensor("w32", {2, 3}, GgmlType::F32, w32.data(), w32.size() * 4);
  w.add_tensor("q4", {64, 2}, GgmlType::Q4_0, q40.data(), q40.size());
  w.add_tensor("q8", {32}, GgmlType::Q8_0, q8.data(), q8.size());
  w.add_tensor("h", {2, 3, 4}, GgmlType::F16, f16.data(), f16.size());
  w.add_tensor("i8", {3, 1, 1, 2}, GgmlType::I8, i8.data(), i8.size());
  w.add_tensor("k", {256}, GgmlType::Q4_K, q4k.data(), q4k.size());
  const std::string path = tmp_path("roundtrip.gguf");
  std::vector<float> fractions;
  w.write(path, [&](float x) { fractions.push_back(x); return true; });
  CHECK(temp_files_of(path) == 0);
  REQUIRE(fractions.size() == 7);  // the header, then each tensor
  for (size_t k = 1; k < fractions.size(); ++k) CHECK(fractions[k] > fractions[k - 1]);
  CHECK(fractions.back() == 1.0f);

  const GgufFile g = GgufFile::open(path);
  CHECK(g.version() == 3);
  CHECK(g.alignment() == 32);
  REQUIRE(g.metadata().size() == meta.size());
  for (const auto& [k, v] : meta) {
    INFO(k);
    REQUIRE(g.has(k));
    CHECK(same(g.get(k), v));
  }
  CHECK(g.get("t.string").as_string("") == std::string("h\xc3\xa9llo\0world", 12));
  CHECK(float(g.get("t.f32").as_float("")) == 0.1f);

  struct Want {
    const char* name;
    std::vector<int64_t> ne;
    GgmlType type;
    const void* data;
    size_t n;
  };
  const Want want[] = {{"w32", {2, 3}, GgmlType::F32, w32.data(), w32.size() * 4},
                       {"q4", {64, 2}, GgmlType::Q4_0, q40.data(), q40.size()},
                       {"q8", {32}, GgmlType::Q8_0, q8.data(), q8.size()},
                       {"h", {2, 3, 4}, GgmlType::F16, f16.data(), f16.size()},
                       {"i8", {3, 1, 1, 2}, GgmlType::I8, i8.data(), i8.size()},
                       {"k", {256}, GgmlType::Q4_K, q4k.data(), q4k.size()}};
  REQUIRE(g.tensors().size() == 6);
  for (size_t k = 0; k < 6; ++k) {
    const GgufTensorInfo& t = g.tensors()[k];
    INFO(want[k].name);
    CHECK(t.name == want[k].name);  // in the order added
    CHECK(t.ne == want[k].ne);
    CHECK(t.type == want[k].type);
    REQUIRE(t.nbytes == want[k].n);
    CHECK(t.offset % 32 == 0);
    CHECK(std::memcmp(g.data(t), want[k].data, want[k].n) == 0);
  }
  fs::remove(path);
}

TEST_CASE("gguf writer: the bytes of a small file are GGUF v3 exactly", "[gguf][writer]") {
  // Built here field by field, independently of the writer's encoder.
  std::vector<uint8_t> want;
  auto pod = [&](auto v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    want.insert(want.end(), p, p + sizeof(v));
  };
  auto str = [&](const std::string& x) {
    pod(uint64_t(x.size()));
    want.insert(want.end(), x.begin(), x.end());
  };
  pod(uint32_t(0x46554747u));
  pod(uint32_t(3));
  pod(uint64_t(2));  // tensors
  pod(uint64_t(2));  // metadata
  str("general.alignment");
  pod(uint32_t(4));
  pod(uint32_t(16));
  str("a");
  pod(uint32_t(9));
  pod(uint32_t(5));
  pod(uint64_t(2));
  pod(int32_t(-3));
  pod(int32_t(4));
  str("x");
  pod(uint32_t(1));
  pod(uint64_t(3));
  pod(uint32_t(0));
  pod(uint64_t(0));
  str("y");
  pod(uint32_t(1));
  pod(uint64_t(1));
  pod(uint32_t(0));
  pod(uint64_t(16));  // 12 bytes of x padded to 16
  while (want.size() % 16) want.push_back(0);
  for (float v : {1.0f, 2.0f, 3.0f}) pod(v);
  want.insert(want.end(), 4, 0);
  pod(-1.0f);
  want.insert(want.end(), 12, 0);

  GgufWriter w;
  w.set("general.alignment", u(GgufType::U32, 16));
  w.set("a", arr(GgufType::I32, {i(GgufType::I32, -3), i(GgufType::I32, 4)}));
  const float x[3] = {1, 2, 3}, y[1] = {-1};
  w.add_tensor("x", {3}, GgmlType::F32, x, sizeof(x));
  w.add_tensor("y", {1}, GgmlType::F32, y, sizeof(y));
  CHECK(w.alignment() == 16);
  const std::string path = tmp_path("exact.gguf");
  w.write(path);
  CHECK(read_all(path) == want);
  CHECK(GgufFile::open(path).alignment() == 16);
  fs::remove(path);
}

TEST_CASE("gguf writer: general.alignment places every tensor", "[gguf][writer]") {
  for (uint64_t a : {1u, 8u, 64u, 4096u}) {
    GgufWriter w;
    w.set("general.alignment", u(GgufType::U32, a));
    std::vector<uint8_t> b(34 * 3, 0x11);
    w.add_tensor("a", {32}, GgmlType::Q8_0, b.data(), 34);
    w.add_tensor("b", {64}, GgmlType::Q8_0, b.data(), 68);
    w.set("later", s("value"));  // set after tensors: still written first
    const std::string path = tmp_path("align.gguf");
    w.write(path);
    const GgufFile g = GgufFile::open(path);
    CHECK(g.alignment() == a);
    for (const auto& t : g.tensors()) CHECK(t.offset % a == 0);
    CHECK(g.get_string("later", "") == "value");
    fs::remove(path);
  }
}

TEST_CASE("gguf writer: set() replaces a key in place", "[gguf][writer]") {
  GgufWriter w;
  w.set("a", s("1"));
  w.set("b", s("2"));
  w.set("a", u(GgufType::U8, 3));
  CHECK(w.n_metadata() == 2);
  const std::string path = tmp_path("replace.gguf");
  w.write(path);
  CHECK(GgufFile::open(path).get("a").as_int("a") == 3);
  fs::remove(path);
}

TEST_CASE("gguf writer: bad values and tensors are refused naming them", "[gguf][writer]") {
  auto refused = [](auto&& call, const std::string& needle) {
    try {
      call();
      FAIL("accepted: " << needle);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(e.kind() == ErrorKind::InvalidArgument);
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
  };
  GgufWriter w;
  refused([&] { w.set("k.u8", u(GgufType::U8, 256)); }, "k.u8");
  refused([&] { w.set("k.i8", i(GgufType::I8, 128)); }, "does not fit in i8");
  refused([&] { w.set("k.u32", i(GgufType::U32, -1)); }, "does not fit in u32");
  refused([&] { w.set("k.i64", u(GgufType::I64, uint64_t(1) << 63)); }, "k.i64");
  refused([&] { w.set("k.type", GgufValue{GgufType::U16, std::string("x")}); }, "integer");
  refused([&] { w.set("k.f32", f(GgufType::F32, 1e300)); }, "f32");
  refused([&] { w.set("k.bool", u(GgufType::BOOL, 1)); }, "bool");
  refused([&] { w.set("k.arr", arr(GgufType::I32, {i(GgufType::I32, 1), s("x")})); }, "k.arr");
  refused([&] { w.set("k.null", GgufValue{GgufType::ARRAY, std::shared_ptr<GgufArray>()}); }, "GgufArray");
  refused([&] { w.set("k.kind", GgufValue{GgufType(13), uint64_t(0)}); }, "unknown value type");
  refused([&] { w.set("", s("x")); }, "empty");
  refused([&] { w.set("general.alignment", u(GgufType::U32, 48)); }, "power of two");
  refused([&] { w.set("general.alignment", u(GgufType::U64, 32)); }, "u32");
  GgufValue deep = arr(GgufType::U8, {});
  for (int d = 0; d < 4; ++d) deep = arr(GgufType::ARRAY, {deep});
  refused([&] { w.set("k.deep", deep); }, "nested");
  CHECK(w.n_metadata() == 0);

  const uint8_t b[64] = {};
  refused([&] { w.add_tensor("", {1}, GgmlType::F32, b, 4); }, "empty");
  refused([&] { w.add_tensor(std::string(65, 'n'), {1}, GgmlType::F32, b, 4); }, "64");
  refused([&] { w.add_tensor("t", {}, GgmlType::F32, b, 0); }, "dimensions");
  refused([&] { w.add_tensor("t", {1, 1, 1, 1, 1}, GgmlType::F32, b, 4); }, "dimensions");
  refused([&] { w.add_tensor("t", {0}, GgmlType::F32, b, 0); }, "ne[0]");
  refused([&] { w.add_tensor("t", {2, -1}, GgmlType::F32, b, 8); }, "ne[1]");
  refused([&] { w.add_tensor("t", {16}, GgmlType::Q4_0, b, 9); }, "block size 32");
  refused([&] { w.add_tensor("t", {3}, GgmlType::F32, b, 8); }, "need 12");
  refused([&] { w.add_tensor("t", {1}, GgmlType(4), b, 4); }, "unknown ggml type");
  refused([&] { w.add_tensor("t", {int64_t(1) << 62, 8}, GgmlType::F32, b, 4); }, "overflows");
  w.add_tensor("t", {1}, GgmlType::F32, b, 4);
  refused([&] { w.add_tensor("t", {1}, GgmlType::F32, b, 4); }, "twice");
  CHECK(w.n_tensors() == 1);
}

TEST_CASE("gguf writer: errors and cancellation leave no file and no temp file", "[gguf][writer]") {
  std::vector<uint8_t> big(34 * 64, 1);
  GgufWriter w;
  w.set("general.architecture", s("llama"));
  for (int k = 0; k < 4; ++k) w.add_tensor("t" + std::to_string(k), {32, 64}, GgmlType::Q8_0, big.data(), big.size());

  SECTION("a missing directory is an Io error naming the path") {
    const std::string path = tmp_path("no_such_dir/x.gguf");
    try {
      w.write(path);
      FAIL("written");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::Io);
      CHECK(std::string(e.what()).find(path) != std::string::npos);
      CHECK(std::string(e.what()).find("No such file or directory") != std::string::npos);
    }
  }
  SECTION("a directory in the way: the rename fails, the temp file is removed") {
    const std::string path = tmp_path("a_directory");
    fs::create_directories(path);
    CHECK_THROWS_AS(w.write(path), Error);
    CHECK(fs::is_directory(path));
    CHECK(temp_files_of(path) == 0);
    fs::remove(path);
  }
  SECTION("cancelled: an existing file stays as it was") {
    const std::string path = tmp_path("cancel.gguf");
    { std::ofstream(path) << "old"; }
    int calls = 0;
    try {
      w.write(path, [&](float) { return ++calls < 3; });
      FAIL("not cancelled");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::Runtime);
      CHECK(std::string(e.what()).find("cancelled") != std::string::npos);
    }
    CHECK(calls == 3);
    CHECK(temp_files_of(path) == 0);
    const auto old = read_all(path);
    CHECK(std::string(old.begin(), old.end()) == "old");
    // Not cancelled: replaced whole.
    w.write(path);
    CHECK(GgufFile::open(path).tensors().size() == 4);
    CHECK(temp_files_of(path) == 0);
    fs::remove(path);
  }
  SECTION("an exception from the callback propagates and cleans up") {
    const std::string path = tmp_path("throw.gguf");
    fs::remove(path);
    CHECK_THROWS_WITH(w.write(path, [](float x) -> bool { if (x > 0.5f) throw std::runtime_error("boom"); return true; }),
                      "boom");
    CHECK(!fs::exists(path));
    CHECK(temp_files_of(path) == 0);
  }
}

TEST_CASE("gguf writer: write_gguf copies an opened file", "[gguf][writer]") {
  GgufWriter w;
  w.set(every_type());
  const float x[4] = {1, 2, 3, 4};
  w.add_tensor("x", {2, 2}, GgmlType::F32, x, sizeof(x));
  const std::string a = tmp_path("copy_a.gguf"), b = tmp_path("copy_b.gguf");
  w.write(a);
  {
    const GgufFile g = GgufFile::open(a);
    write_gguf(b, g);
    write_gguf(a, g);  // over its own source: the mapping keeps the old bytes readable
  }
  const GgufFile ga = GgufFile::open(a), gb = GgufFile::open(b);
  REQUIRE(ga.metadata().size() == gb.metadata().size());
  for (const auto& [k, v] : ga.metadata()) CHECK(same(v, gb.get(k)));
  CHECK(std::memcmp(gb.data(gb.tensor("x")), x, sizeof(x)) == 0);
  CHECK(read_all(a) == read_all(b));
  fs::remove(a);
  fs::remove(b);
}
