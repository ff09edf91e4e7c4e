# Builds examples/cpp against halfbyte twice and runs it:
#   1. find_package(halfbyte) from a fresh `cmake --install` prefix,
#   2. add_subdirectory() of the source tree.
# Invoked by CTest (see tests/CMakeLists.txt) with HB_BUILD_DIR, HB_SOURCE_DIR,
# HB_WORK_DIR, HB_GENERATOR and HB_BUILD_TYPE.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "command failed (${rc}): ${cmd}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${HB_WORK_DIR}")
set(prefix "${HB_WORK_DIR}/prefix")
run(${CMAKE_COMMAND} --install "${HB_BUILD_DIR}" --prefix "${prefix}")
if(NOT EXISTS "${prefix}/include/halfbyte/halfbyte.hpp")
  message(FATAL_ERROR "install did not put the headers in ${prefix}/include")
endif()

foreach(mode installed subdirectory)
  set(bdir "${HB_WORK_DIR}/build-${mode}")
  if(mode STREQUAL "installed")
    set(extra "-DCMAKE_PREFIX_PATH=${prefix}")
  else()
    set(extra "-DHALFBYTE_SOURCE_DIR=${HB_SOURCE_DIR}")
  endif()
  run(${CMAKE_COMMAND} -S "${HB_SOURCE_DIR}/examples/cpp" -B "${bdir}" -G "${HB_GENERATOR}"
      -DCMAKE_BUILD_TYPE=${HB_BUILD_TYPE} ${extra})
  run(${CMAKE_COMMAND} --build "${bdir}")
  run("${bdir}/quantize_example")
  if(NOT last_output MATCHES "q4_0 RMSE")
    message(FATAL_ERROR "unexpected output from the ${mode} consumer:\n${last_output}")
  endif()
  message(STATUS "${mode} consumer OK:\n${last_output}")
endforeach()
