# The object files of ISA-specific kernels (compiled with -mavx2, -mavx512*, or
# -march=armv8.2-a+...) must define no weak (COMDAT) symbols: the linker keeps one
# copy of an inline function for the whole program, and a copy compiled for a
# newer ISA would then run on CPUs that lack it. Only strong, ISA-local symbols
# (the fill() entry points) are allowed.
separate_arguments(objects UNIX_COMMAND "${OBJECTS}")
set(checked 0)
foreach(obj IN LISTS objects)
  if(NOT obj MATCHES "/kernels/(avx2|avx512|amx|neon)/")
    continue()
  endif()
  math(EXPR checked "${checked} + 1")
  execute_process(COMMAND ${NM} -C --defined-only "${obj}" OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${obj}")
  endif()
  string(REGEX MATCHALL "[^\n]* [WVuiv] [^\n]*" weak "${syms}")
  # DW.ref.__gxx_personality_v0: exception-handling data every C++ object may
  # carry (seen in sanitizer builds), not code.
  list(FILTER weak EXCLUDE REGEX " DW\\.ref\\.")
  if(weak)
    string(REPLACE ";" "\n" weak "${weak}")
    message(FATAL_ERROR "${obj} defines weak symbols (inline functions compiled with ISA flags):\n${weak}")
  endif()
endforeach()
message(STATUS "checked ${checked} ISA object files: no weak symbols")
