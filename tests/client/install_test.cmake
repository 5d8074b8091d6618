# cmake -P: installs the build into PREFIX, checks that include/ holds only
# weightd/, builds examples/trainer (an outside project) against it with
# find_package(weightd 0.2 CONFIG REQUIRED), and builds pkg_config_main.cc
# with nothing but `pkg-config --cflags --libs weightd` (and weightd-core),
# then runs those programs.
# -DBUILD_DIR= -DPREFIX= -DSOURCE=examples/trainer -DWORK=trainer build dir
# -DPKG_MAIN=tests/client/pkg_config_main.cc -DCXX=compiler
file(REMOVE_RECURSE ${PREFIX} ${WORK})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})
file(GLOB top RELATIVE ${PREFIX}/include ${PREFIX}/include/*)
if(NOT top STREQUAL "weightd")
  message(FATAL_ERROR "include/ must hold weightd/ only, holds: ${top}")
endif()
foreach(h weightd/client.h weightd/client_core.h)
  if(NOT EXISTS ${PREFIX}/include/${h})
    message(FATAL_ERROR "no ${h} under ${PREFIX}/include")
  endif()
endforeach()

run(${CMAKE_COMMAND} -S ${SOURCE} -B ${WORK} -G Ninja -DCMAKE_PREFIX_PATH=${PREFIX}
    -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK})
if(NOT EXISTS ${WORK}/trainer)
  message(FATAL_ERROR "no trainer binary in ${WORK}")
endif()
message(STATUS "built ${WORK}/trainer against ${PREFIX}")

# The version file: a project asking for 0.2 finds this 0.2.0; one asking
# for 0.3 or 0.1 does not (SameMinorVersion).
foreach(want 0.2 0.3 0.1)
  set(dir ${WORK}/version-${want})
  set(expect FALSE)
  if(want STREQUAL "0.2")
    set(expect TRUE)
  endif()
  file(WRITE ${dir}/CMakeLists.txt
       "cmake_minimum_required(VERSION 3.18)\nproject(v LANGUAGES C CXX)\n"
       "find_package(weightd ${want} CONFIG QUIET)\n"
       "if(weightd_FOUND)\n  set(found TRUE)\n"
       "else()\n  set(found FALSE)\nendif()\n"
       "if(NOT found STREQUAL ${expect})\n"
       "  message(FATAL_ERROR \"find_package(weightd ${want}): found=\${found}\")\nendif()\n")
  run(${CMAKE_COMMAND} -S ${dir} -B ${dir}/build -DCMAKE_PREFIX_PATH=${PREFIX})
endforeach()

# pkg-config, as a Makefile would use it.
file(GLOB pc_dir LIST_DIRECTORIES true ${PREFIX}/lib*/pkgconfig ${PREFIX}/lib/*/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
foreach(pc weightd-core weightd)
  run(pkg-config --modversion ${pc})
  string(STRIP "${out}" version)
  if(NOT version STREQUAL "0.2.0")
    message(FATAL_ERROR "pkg-config --modversion ${pc}: ${version}")
  endif()
  run(pkg-config --cflags --libs ${pc})
  separate_arguments(flags UNIX_COMMAND "${out}")
  set(defines)
  if(pc STREQUAL "weightd-core")
    set(defines -DWEIGHTD_CORE_ONLY)
  endif()
  run(${CXX} -std=c++17 ${defines} ${PKG_MAIN} ${flags} -o ${WORK}/pkg_config_${pc})
  run(${WORK}/pkg_config_${pc})
  if(NOT out STREQUAL "ok\n")
    message(FATAL_ERROR "pkg_config_${pc} printed: ${out}")
  endif()
  message(STATUS "built and ran ${WORK}/pkg_config_${pc} with pkg-config ${pc}")
endforeach()
