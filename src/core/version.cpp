#include "halfbyte/version.hpp"

namespace halfbyte {
const char* library_version() noexcept { return HALFBYTE_VERSION_STRING; }
}  // namespace halfbyte
