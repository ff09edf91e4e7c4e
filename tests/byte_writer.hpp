// Bytes: little-endian byte strings written field by field, for the tests and fuzz
// seeds that build model files from their format's definition (independent of the
// library's writers).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace halfbyte::test {

struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  Bytes& pod(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& raw(const std::string& s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  void pad_to(size_t n) { b.resize(n, 0); }
};

}  // namespace halfbyte::test
