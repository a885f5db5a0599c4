# hc_add_plugin(NAME SOURCES...): builds a plugin shared object into the plugin folder, linked to
# the core library, and installs it. Plugins are named hc-<kind>-<name>.so by convention.
function(hc_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  # installed in lib/hcinfer/plugins: libhc is two folders up
  set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden LIBRARY_OUTPUT_DIRECTORY ${HC_PLUGIN_OUTPUT_DIR}
                        INSTALL_RPATH "$ORIGIN/../..")
  target_link_libraries(${name} PRIVATE hc)
  install(TARGETS ${name} LIBRARY DESTINATION ${HC_PLUGIN_INSTALL_DIR})
endfunction()
