# cmake -P: installs the build into PREFIX and builds examples/trainer (an
# outside project) against it with find_package(weightd CONFIG REQUIRED).
# -DBUILD_DIR= -DPREFIX= -DSOURCE=examples/trainer -DWORK=trainer build dir
file(REMOVE_RECURSE ${PREFIX} ${WORK})
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD_DIR};--prefix;${PREFIX}"
    "${CMAKE_COMMAND};-S;${SOURCE};-B;${WORK};-G;Ninja;-DCMAKE_PREFIX_PATH=${PREFIX};-DCMAKE_BUILD_TYPE=Release"
    "${CMAKE_COMMAND};--build;${WORK}")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${step}\n${out}\n${err}")
  endif()
endforeach()
if(NOT EXISTS ${WORK}/trainer)
  message(FATAL_ERROR "no trainer binary in ${WORK}")
endif()
message(STATUS "built ${WORK}/trainer against ${PREFIX}")
