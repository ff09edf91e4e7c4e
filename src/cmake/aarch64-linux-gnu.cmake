# Toolchain file: cross-compile halfbyte for 64-bit Arm Linux with Debian's
# g++-aarch64-linux-gnu, and run its executables (tests, test discovery, the CLI)
# under qemu user-mode emulation.
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=src/cmake/aarch64-linux-gnu.cmake
#         [-DHALFBYTE_QEMU_CPU=cortex-a53]   # default: max (dotprod, i8mm, ...)
#
# Executables are linked statically, so qemu needs no aarch64 sysroot (-L).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(HALFBYTE_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${HALFBYTE_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${HALFBYTE_CROSS_TRIPLE}-g++)

# The CPU qemu emulates: "max" has every extension qemu knows (dotprod, i8mm, ...);
# "cortex-a53" is plain ARMv8.0 (no dotprod), which exercises the scalar fallback.
# Passing -DCMAKE_CROSSCOMPILING_EMULATOR=... overrides the whole command instead.
set(HALFBYTE_QEMU_CPU "max" CACHE STRING "CPU model for qemu-aarch64 -cpu when running tests")
if(NOT DEFINED CACHE{CMAKE_CROSSCOMPILING_EMULATOR})
  set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-aarch64;-cpu;${HALFBYTE_QEMU_CPU}")
endif()

# Static executables (libstdc++, libgomp and glibc included): no sysroot for qemu.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
# FindOpenMP would name libgomp.so, which a static link refuses: use the archive.
if(NOT DEFINED CACHE{OpenMP_gomp_LIBRARY})
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libgomp.a
                  OUTPUT_VARIABLE _hb_gomp OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(IS_ABSOLUTE "${_hb_gomp}" AND EXISTS "${_hb_gomp}")
    set(OpenMP_gomp_LIBRARY "${_hb_gomp}" CACHE FILEPATH "libgomp (static, for the cross build)")
  endif()
  unset(_hb_gomp)
endif()

# Libraries and headers for the target come from the cross toolchain's tree;
# programs (qemu, ...) from the build machine.
set(CMAKE_FIND_ROOT_PATH /usr/${HALFBYTE_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Package configs may come from the build machine too: the dependencies that are
# not in the cross tree (Eigen, xtl, xsimd, Catch2 v2, nlohmann_json) are header-only.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# Debian's Catch2, xtl, xsimd and nlohmann_json configs say INTERFACE_INCLUDE_DIRECTORIES
# /usr/include. On the cross compiler's command line that -isystem /usr/include
# would come before the aarch64 C library and libstdc++ headers and break them
# (<cstdlib>'s #include_next, x86-only bits). So each such config is mirrored into
# a private prefix under the build tree whose include/ holds only that package's
# headers (a symlink), and find_package is pointed there. Eigen's config says
# /usr/include/eigen3 and is used as it is. (Debian's Catch2 config also checks
# that its x86-64 libCatch2WithMain.a exists: it is linked in as well, unused.)
if(NOT CMAKE_IN_TRY_COMPILE AND CMAKE_BINARY_DIR)
  set(_hb_host "${CMAKE_BINARY_DIR}/_host_header_packages")
  # package | its headers under /usr/include | config directory globs under /usr
  foreach(_hb_entry IN ITEMS "Catch2|catch2|lib/cmake/Catch2;share/cmake/Catch2;lib/*/cmake/Catch2"
                             "xtl|xtl|share/cmake/xtl;lib/cmake/xtl;lib/*/cmake/xtl"
                             "xsimd|xsimd|lib/*/cmake/xsimd;lib/cmake/xsimd;share/cmake/xsimd"
                             "nlohmann_json|nlohmann|share/cmake/nlohmann_json;lib/cmake/nlohmann_json")
    string(REPLACE "|" ";" _hb_fields "${_hb_entry}")
    list(GET _hb_fields 0 _hb_pkg)
    list(GET _hb_fields 1 _hb_hdr)
    list(SUBLIST _hb_fields 2 -1 _hb_globs)
    if(DEFINED CACHE{${_hb_pkg}_DIR} OR NOT EXISTS /usr/include/${_hb_hdr})
      continue()
    endif()
    set(_hb_found "")
    foreach(_hb_glob IN LISTS _hb_globs)
      file(GLOB _hb_dirs LIST_DIRECTORIES true "/usr/${_hb_glob}")
      foreach(_hb_dir IN LISTS _hb_dirs)
        if(NOT _hb_found AND EXISTS "${_hb_dir}/${_hb_pkg}Config.cmake")
          set(_hb_found "${_hb_dir}")
        endif()
      endforeach()
    endforeach()
    if(NOT _hb_found)
      continue()
    endif()
    # Same path relative to the prefix, so the config's own prefix computation holds.
    file(RELATIVE_PATH _hb_rel /usr "${_hb_found}")
    set(_hb_prefix "${_hb_host}/${_hb_pkg}")
    get_filename_component(_hb_parent "${_hb_prefix}/${_hb_rel}" DIRECTORY)
    file(REMOVE_RECURSE "${_hb_prefix}")
    file(MAKE_DIRECTORY "${_hb_prefix}/include" "${_hb_parent}")
    file(COPY "${_hb_found}/" DESTINATION "${_hb_prefix}/${_hb_rel}")
    file(CREATE_LINK /usr/include/${_hb_hdr} "${_hb_prefix}/include/${_hb_hdr}" SYMBOLIC)
    # Files the config checks for next to it (Catch2's lib/libCatch2WithMain.a).
    file(GLOB _hb_target_files "${_hb_prefix}/${_hb_rel}/*Targets-*.cmake")
    set(_hb_refs "")
    foreach(_hb_tf IN LISTS _hb_target_files)
      file(STRINGS "${_hb_tf}" _hb_lines REGEX "_IMPORT_PREFIX}/lib")
      list(APPEND _hb_refs ${_hb_lines})
    endforeach()
    foreach(_hb_ref IN LISTS _hb_refs)
      if(_hb_ref MATCHES "_IMPORT_PREFIX}/(lib/[^\" ]+)")
        set(_hb_lib "${CMAKE_MATCH_1}")
        if(EXISTS "/usr/${_hb_lib}" AND NOT EXISTS "${_hb_prefix}/${_hb_lib}")
          get_filename_component(_hb_libdir "${_hb_prefix}/${_hb_lib}" DIRECTORY)
          file(MAKE_DIRECTORY "${_hb_libdir}")
          file(CREATE_LINK "/usr/${_hb_lib}" "${_hb_prefix}/${_hb_lib}" SYMBOLIC)
        endif()
      endif()
    endforeach()
    set(${_hb_pkg}_DIR "${_hb_prefix}/${_hb_rel}" CACHE PATH "${_hb_pkg} config (mirrored for cross-compiling)")
  endforeach()
  unset(_hb_host)
  unset(_hb_found)
  unset(_hb_dirs)
endif()
