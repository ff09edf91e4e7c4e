// halfbyte version. The single source of truth: CMakeLists.txt and pyproject.toml
// both read HALFBYTE_VERSION_STRING from this file.
#pragma once

#define HALFBYTE_VERSION_MAJOR 0
#define HALFBYTE_VERSION_MINOR 1
#define HALFBYTE_VERSION_PATCH 0
#define HALFBYTE_VERSION_STRING "0.1.0"

namespace halfbyte {
// Version of the headers the caller was compiled with.
inline constexpr int kVersionMajor = HALFBYTE_VERSION_MAJOR;
inline constexpr int kVersionMinor = HALFBYTE_VERSION_MINOR;
inline constexpr int kVersionPatch = HALFBYTE_VERSION_PATCH;

// Version of the compiled library (differs from the above only if headers and
// library come from different installs).
const char* library_version() noexcept;
}  // namespace halfbyte
