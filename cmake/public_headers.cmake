# weightd_public_headers(OUT_DIR): writes the installed header tree,
# OUT_DIR/weightd/{client.h, client_core.h, core/...}, at configure time.
#
# Users include <weightd/client.h> and <weightd/client_core.h> with OUT_DIR
# (the prefix's include/) as the only include root. The sources spell their
# includes from the project root ("client/client_core.h", "core/match/rules.h"),
# so each public header and the core headers it reaches are copied with those
# includes rewritten to <weightd/...>. Only the closure of the two entry
# headers is written: nothing else of the project reaches a user's include
# path. The copies keep the include guards of their sources, so a translation
# unit of the project that sees both spellings gets one definition.
function(weightd_public_headers out_dir)
  set(todo client/client.h client/client_core.h)
  set(done)
  set(written)
  while(todo)
    list(POP_FRONT todo header)
    if(header IN_LIST done)
      continue()
    endif()
    list(APPEND done ${header})
    set(source ${PROJECT_SOURCE_DIR}/${header})
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${source})
    file(READ ${source} text)
    string(REGEX MATCHALL "#include \"(client|core)/[^\"]+\"" includes "${text}")
    foreach(line ${includes})
      string(REGEX REPLACE "#include \"([^\"]+)\"" "\\1" dep "${line}")
      if(dep MATCHES "^client/" AND NOT dep MATCHES "^client/client(_core)?\\.h$")
        message(FATAL_ERROR "public header ${header} includes the private ${dep}")
      endif()
      list(APPEND todo ${dep})
    endforeach()
    string(REGEX REPLACE "#include \"client/(client(_core)?\\.h)\"" "#include <weightd/\\1>"
           text "${text}")
    string(REGEX REPLACE "#include \"(core/[^\"]+)\"" "#include <weightd/\\1>" text "${text}")
    string(REGEX REPLACE "^client/" "" dest "${header}")
    set(out ${out_dir}/weightd/${dest})
    set(text "// Installed copy of ${header}, includes spelled <weightd/...>.\n${text}")
    set(old "")
    if(EXISTS ${out})
      file(READ ${out} old)
    endif()
    if(NOT old STREQUAL text)  # unchanged copies keep their time stamps
      file(WRITE ${out} "${text}")
    endif()
    list(APPEND written ${out})
  endwhile()
  file(GLOB_RECURSE existing ${out_dir}/weightd/*)
  foreach(f ${existing})
    if(NOT f IN_LIST written)
      file(REMOVE ${f})
    endif()
  endforeach()
endfunction()
