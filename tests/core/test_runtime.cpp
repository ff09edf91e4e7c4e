#include <catch2/catch.hpp>

#include <algorithm>

#include "halfbyte/core/error.hpp"
#include "halfbyte/runtime.hpp"
#include "halfbyte/threads.hpp"
#include "halfbyte/version.hpp"

TEST_CASE("ISA selection: report, override, refuse unknown names", "[runtime]") {
  const auto isas = halfbyte::available_isas();
  REQUIRE_FALSE(isas.empty());
  REQUIRE(std::find(isas.begin(), isas.end(), halfbyte::isa()) != isas.end());
  const std::string before = halfbyte::isa();
  halfbyte::set_isa("scalar");
  REQUIRE(halfbyte::isa() == "scalar");
  halfbyte::set_isa(before);
  try {
    halfbyte::set_isa("avx9000");
    FAIL("no error");
  } catch (const halfbyte::Error& e) {
    REQUIRE(e.kind() == halfbyte::ErrorKind::InvalidArgument);
    REQUIRE_THAT(e.what(), Catch::Contains("unknown ISA 'avx9000'") && Catch::Contains("scalar"));
  }
}

TEST_CASE("library and header versions agree", "[runtime]") {
  REQUIRE(std::string(halfbyte::library_version()) == HALFBYTE_VERSION_STRING);
}

TEST_CASE("release_thread_pool: safe anywhere, parallel work starts again after it", "[runtime]") {
  // Called outside and inside a parallel region (there: nothing happens), then
  // parallel work runs with every thread again.
  halfbyte::release_thread_pool();
  int seen = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(2) reduction(+ : seen)
  {
    halfbyte::release_thread_pool();
    seen += 1;
  }
  halfbyte::release_thread_pool();
  int again = 0;
#pragma omp parallel num_threads(2) reduction(+ : again)
  again += 1;
  CHECK(seen == 2);
  CHECK(again == 2);
#else
  CHECK(seen == 0);
#endif
}
