# cmake --install: the client headers, weightd_client, weightd_client_core
# and the static libraries they need, and a weightdConfig.cmake that makes
# weightd::client (LibTorch) and weightd::client_core (no LibTorch).
# The config is written by hand (not install(EXPORT)) because the core and
# proto targets carry source-tree include directories.
include(CMakePackageConfigHelpers)
include(GNUInstallDirs)

set(WEIGHTD_INSTALL_LIBS weightd_client weightd_client_core weightd_match weightd_checkpoint weightd_proto)
foreach(lib ${WEIGHTD_INSTALL_LIBS})
  install(FILES $<TARGET_FILE:${lib}> DESTINATION ${CMAKE_INSTALL_LIBDIR})
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/client/client.h ${PROJECT_SOURCE_DIR}/client/client_core.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/weightd/client)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/checkpoint ${PROJECT_SOURCE_DIR}/core/match
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/weightd/core
        FILES_MATCHING PATTERN "*.h")

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/weightdConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/weightdConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weightd
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/weightdConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/weightdConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/weightdConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weightd)
