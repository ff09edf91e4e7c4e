// AnonMap / ScratchArena / resident_bytes (src/core/memory_map.hpp): the KV cache
// and scratch cost memory only where written, and the memory report can tell.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "core/memory_map.hpp"
#include "halfbyte/core/error.hpp"

using namespace halfbyte;

TEST_CASE("memory map: an anonymous mapping is resident only where written", "[memory]") {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  AnonMap m(64 * page, "test map");
  REQUIRE(m.bytes() == 64 * page);
  const auto before = resident_bytes(m.data(), m.bytes());
  if (!before) {
    WARN("/proc/self/pagemap cannot be read here: residency checks skipped");
    return;
  }
  CHECK(*before == 0);
  m.data()[0] = 1;              // page 0
  m.data()[10 * page + 7] = 1;  // page 10
  std::memset(m.data() + 20 * page, 1, 3 * page);  // pages 20..22
  // Transparent huge pages could make a write fault in more than a page; anonymous
  // mappings here are not advised for them, so the count is exact.
  CHECK(*resident_bytes(m.data(), m.bytes()) == 5 * page);
  CHECK(*resident_bytes(m.data() + 10 * page, page) == page);
  CHECK(*resident_bytes(m.data() + 11 * page, 9 * page) == 0);
  CHECK(*resident_bytes(m.data(), 0) == 0);

  AnonMap moved = std::move(m);
  CHECK(m.data() == nullptr);
  CHECK(*resident_bytes(moved.data(), moved.bytes()) == 5 * page);
}

TEST_CASE("memory map: more than physical memory is refused by name", "[memory]") {
  const double phys = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (phys <= 0 || phys * 2 > double(SIZE_MAX)) return;
  try {
    AnonMap m(size_t(phys * 2), "a KV cache for n_ctx = 123");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::InvalidArgument);
    CHECK_THAT(e.what(), Catch::Contains("a KV cache for n_ctx = 123") && Catch::Contains("GB"));
  }
}

TEST_CASE("memory map: a scratch arena hands out aligned arrays up to its size", "[memory]") {
  ScratchArena a(1000 + 17 + 5, 3, "scratch");
  float* x = a.take(1000);
  float* y = a.take(17);
  float* z = a.take(5);
  for (float* p : {x, y, z}) CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  CHECK(y >= x + 1000);
  CHECK(z >= y + 17);
  x[999] = y[16] = z[4] = 1.0f;  // writable to their ends
  CHECK_THROWS_AS(a.take(1 << 20), Error);
}
