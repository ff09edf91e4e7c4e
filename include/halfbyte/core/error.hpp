// Errors. Every failure the caller can cause (bad argument, bad file, unsupported
// feature) is a halfbyte::Error whose message names what was wrong and what was
// expected, e.g. "quantize: row length 33 is not a multiple of the q4_0 block
// size 32". Asserts are reserved for internal invariants.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace halfbyte {

enum class ErrorKind {
  InvalidArgument,  // caller passed a bad value, shape or name (Python: ValueError)
  Io,               // the OS refused: missing file, permissions (Python: OSError)
  Format,           // a file's content is malformed or hostile (Python: ValueError)
  Unsupported,      // valid request this build/CPU cannot serve (Python: RuntimeError)
  Runtime,          // anything else (Python: RuntimeError)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  explicit Error(const std::string& message) : Error(ErrorKind::Runtime, message) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// Throws Error(kind, concat(args...)). Usage:
//   throw_error(ErrorKind::InvalidArgument, "quantize: ", n, " columns is not ...");
template <class... Args>
[[noreturn]] void throw_error(ErrorKind kind, Args&&... args) {
  throw Error(kind, detail::concat(std::forward<Args>(args)...));
}

template <class... Args>
[[noreturn]] void throw_invalid(Args&&... args) {
  throw_error(ErrorKind::InvalidArgument, std::forward<Args>(args)...);
}

}  // namespace halfbyte
