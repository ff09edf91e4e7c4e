// Tiny option parsing shared by the sub-commands.
#pragma once

#include <string>
#include <vector>

#include "halfbyte/core/error.hpp"

namespace halfbyte::cli {

class ArgReader {
 public:
  ArgReader(const std::vector<std::string>& args, const char* command) : args_(args), cmd_(command) {}
  bool done() const { return i_ >= args_.size(); }
  const std::string& next() { return args_[i_++]; }
  // The value after option `flag`.
  const std::string& value(const std::string& flag) {
    if (i_ >= args_.size()) throw_invalid(flag, " needs a value");
    return args_[i_++];
  }
  long integer(const std::string& flag, long lo, long hi) {
    const std::string& v = value(flag);
    try {
      size_t pos = 0;
      const long x = std::stol(v, &pos);
      if (pos == v.size() && x >= lo && x <= hi) return x;
    } catch (...) {
    }
    throw_invalid(flag, " expects an integer in [", lo, ", ", hi, "], got '", v, "'");
  }
  double number(const std::string& flag, double lo, double hi) {
    const std::string& v = value(flag);
    try {
      size_t pos = 0;
      const double x = std::stod(v, &pos);
      if (pos == v.size() && x >= lo && x <= hi) return x;
    } catch (...) {
    }
    throw_invalid(flag, " expects a number in [", lo, ", ", hi, "], got '", v, "'");
  }
  [[noreturn]] void unknown(const std::string& a) const {
    throw_invalid("unknown option '", a, "' (see halfbyte ", cmd_, " --help)");
  }

 private:
  const std::vector<std::string>& args_;
  const char* cmd_;
  size_t i_ = 0;
};

}  // namespace halfbyte::cli
