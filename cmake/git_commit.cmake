# Writes OUT (a header defining PLATEAU_GIT_COMMIT) from `git describe --always --dirty` of SRC, or
# "unknown" when SRC is no git checkout or git is missing; rewritten only when it changes, so a
# build that changes nothing recompiles nothing. Run at every build (the plateau_git_commit target).
set(commit "unknown")
find_program(GIT git)
if(GIT)
  execute_process(COMMAND ${GIT} -C ${SRC} describe --always --dirty --abbrev=12
                  OUTPUT_VARIABLE out RESULT_VARIABLE rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc EQUAL 0 AND out)
    set(commit "${out}")
  endif()
endif()
set(text "#define PLATEAU_GIT_COMMIT \"${commit}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
