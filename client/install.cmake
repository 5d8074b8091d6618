# cmake --install: the client headers (<weightd/client.h>,
# <weightd/client_core.h> and the core headers they include, under include/
# and nothing else there), weightd_client, weightd_client_core and the static
# libraries they need, a weightdConfig.cmake with its version file that makes
# weightd::client (LibTorch) and weightd::client_core (no LibTorch), and
# pkg-config files: weightd.pc (the client, LibTorch flags included) and
# weightd-core.pc (ClientCore only).
# The config is written by hand (not install(EXPORT)) because the core and
# proto targets carry source-tree include directories.
include(CMakePackageConfigHelpers)
include(GNUInstallDirs)

set(WEIGHTD_INSTALL_LIBS weightd_client weightd_client_core weightd_ipc weightd_match weightd_checkpoint weightd_proto)
foreach(lib ${WEIGHTD_INSTALL_LIBS})
  install(FILES $<TARGET_FILE:${lib}> DESTINATION ${CMAKE_INSTALL_LIBDIR})
endforeach()
install(DIRECTORY ${WEIGHTD_PUBLIC_INCLUDE_DIR}/weightd DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/weightdConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/weightdConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weightd
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
# 0.x: a minor version may break the API, so find_package(weightd 0.2)
# accepts 0.2.* only.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/weightdConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/weightdConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/weightdConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weightd)

# pkg-config: relocatable (${pcfiledir}), static libraries in link order.
# LibTorch has no .pc file: weightd.pc carries its include directories and
# libraries as this build found them.
set(WEIGHTD_PC_LIBDIR ${CMAKE_INSTALL_LIBDIR})
set(WEIGHTD_PC_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
string(REGEX REPLACE "[^/]+" ".." WEIGHTD_PC_UP "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
set(torch_cflags)
foreach(dir ${TORCH_INCLUDE_DIRS})
  string(APPEND torch_cflags " -I${dir}")
endforeach()
string(APPEND torch_cflags " ${TORCH_CXX_FLAGS}")
string(STRIP "${torch_cflags}" WEIGHTD_PC_TORCH_CFLAGS)
set(WEIGHTD_PC_TORCH_LIBS)
foreach(lib torch torch_cpu c10)
  if(TARGET ${lib})
    string(APPEND WEIGHTD_PC_TORCH_LIBS " $<TARGET_LINKER_FILE:${lib}>")
  endif()
endforeach()
foreach(pc weightd weightd-core)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc.in @ONLY)
  file(GENERATE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc
       INPUT ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc.in)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
