# hc_room(NAME KIND [DEPS room...]): one room of core/ (or kernels/cpu) as a library of its folder's
# *.c files. KIND is OBJECT for the engine's rooms (linked into libhc.so, hidden visibility: only
# HC_API is exported) or STATIC for the applications' rooms (linked into hcinfer and the tests).
# A room sees its own headers, the SDK's and those of the rooms it names: never a room above it.
function(hc_room name kind)
  cmake_parse_arguments(R "" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  add_library(hc_${name} ${kind} ${srcs})
  target_include_directories(hc_${name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/sdk/include>)
  target_compile_definitions(hc_${name} PRIVATE HC_BUILDING_LIB
    HC_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    HC_INSTALL_DATADIR="${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/hcinfer")
  set_target_properties(hc_${name} PROPERTIES C_VISIBILITY_PRESET hidden POSITION_INDEPENDENT_CODE ON)
  foreach(dep IN LISTS R_DEPS)
    get_target_property(dep_type hc_${dep} TYPE)
    if(dep_type STREQUAL "OBJECT_LIBRARY")
      # usage requirements (include folders) only: an engine room's objects go into libhc alone
      target_include_directories(hc_${name} PUBLIC $<TARGET_PROPERTY:hc_${dep},INTERFACE_INCLUDE_DIRECTORIES>)
    else()
      target_link_libraries(hc_${name} PUBLIC hc_${dep})
    endif()
  endforeach()
  if(kind STREQUAL "STATIC")
    target_link_libraries(hc_${name} PUBLIC hc)
  endif()
endfunction()
