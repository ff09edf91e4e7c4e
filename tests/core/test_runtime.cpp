#include <catch2/catch.hpp>

#include <algorithm>

#include "halfbyte/core/error.hpp"
#include "halfbyte/runtime.hpp"
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
