# HcInstall.cmake: what `cmake --install` adds beside libhc, hcinfer and the plugins: the public
# headers, the Lua scripts, and the pkg-config and CMake package files plugins build against.
include(CMakePackageConfigHelpers)

# The plugin ABI version, read from the header so that the package files can never disagree with it.
file(STRINGS ${PROJECT_SOURCE_DIR}/sdk/include/hc/hc_plugin.h hc_abi_line REGEX "^#define HC_ABI_VERSION ")
string(REGEX REPLACE "^#define HC_ABI_VERSION +([0-9]+).*" "\\1" HC_ABI_VERSION "${hc_abi_line}")
if(NOT HC_ABI_VERSION MATCHES "^[0-9]+$")
  message(FATAL_ERROR "sdk/include/hc/hc_plugin.h: no '#define HC_ABI_VERSION <number>' line found")
endif()

# Every public header, matched when installing: a new sdk/include/hc/*.h needs no edit here.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sdk/include/hc DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")

# Rank policies and pipeline compositions (Lua), as far as the source tree has them.
foreach(hc_lua_dir policies pipelines)
  if(IS_DIRECTORY ${PROJECT_SOURCE_DIR}/scripts/${hc_lua_dir})
    install(DIRECTORY ${PROJECT_SOURCE_DIR}/scripts/${hc_lua_dir} DESTINATION ${CMAKE_INSTALL_DATADIR}/hcinfer
            FILES_MATCHING PATTERN "*.lua")
  endif()
endforeach()

# pkg-config: paths relative to the .pc file (${pcfiledir}), so that the prefix given to
# `cmake --install --prefix P` (or a moved installation) is found without reconfiguring.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(HC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH hc_pc_up "/hc-prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/hc-prefix")
  string(REGEX REPLACE "/$" "" hc_pc_up "${hc_pc_up}")
  set(HC_PC_PREFIX "\${pcfiledir}/${hc_pc_up}")
endif()
set(HC_PC_LIBS_PRIVATE "")
foreach(hc_lib IN LISTS OPENBLAS_LIBRARIES LAPACKE_LIBRARIES LUA_LIBRARIES CMAKE_DL_LIBS)
  string(APPEND HC_PC_LIBS_PRIVATE " -l${hc_lib}")
endforeach()
string(APPEND HC_PC_LIBS_PRIVATE " -lpthread -lm")
configure_file(${PROJECT_SOURCE_DIR}/cmake/hcinfer.pc.in ${PROJECT_BINARY_DIR}/sdk/hcinfer.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/sdk/hcinfer.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# CMake package: hcinfer::hc, hcinfer::hcinfer and hcinfer_add_plugin() (find_package(hcinfer)).
get_target_property(HC_SOVERSION hc SOVERSION)
set(HC_LIB_FILE ${CMAKE_INSTALL_LIBDIR}/${CMAKE_SHARED_LIBRARY_PREFIX}hc${CMAKE_SHARED_LIBRARY_SUFFIX}.${PROJECT_VERSION})
set(HC_LIB_SONAME ${CMAKE_SHARED_LIBRARY_PREFIX}hc${CMAKE_SHARED_LIBRARY_SUFFIX}.${HC_SOVERSION})
set(HC_EXE_FILE ${CMAKE_INSTALL_BINDIR}/hcinfer)
set(HC_DATA_INSTALL_DIR ${CMAKE_INSTALL_DATADIR}/hcinfer)
set(HC_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hcinfer)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/hcinfer-config.cmake.in
  ${PROJECT_BINARY_DIR}/sdk/hcinfer-config.cmake
  INSTALL_DESTINATION ${HC_CMAKE_INSTALL_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR HC_LIB_FILE HC_EXE_FILE HC_PLUGIN_INSTALL_DIR HC_DATA_INSTALL_DIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/sdk/hcinfer-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/sdk/hcinfer-config.cmake ${PROJECT_BINARY_DIR}/sdk/hcinfer-config-version.cmake
        DESTINATION ${HC_CMAKE_INSTALL_DIR})
