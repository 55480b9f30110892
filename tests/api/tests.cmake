# libplateau and the Python package (issue 16): the package against the CLI, the numpy reference and
# `plateau run` on every family; cmake --install into a prefix, used from C (pkg-config, CMake) and
# Python there; the example docs/explore.py.
add_executable(check_batch_rows ${CMAKE_CURRENT_LIST_DIR}/check_batch_rows.c)
target_link_libraries(check_batch_rows PRIVATE plateau_util)
plateau_test(api_batch_rows $<TARGET_FILE:check_batch_rows>)

# The Python tests load libplateau.so into /usr/bin/python3; a sanitized library needs its runtimes
# preloaded (and leaks of the interpreter are not ours).
set(PL_API_ENV "PLATEAU_LIB=$<TARGET_FILE:plateau_shared>")
if(PLATEAU_SANITIZE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so OUTPUT_VARIABLE PL_ASAN_SO
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so OUTPUT_VARIABLE PL_UBSAN_SO
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  list(APPEND PL_API_ENV "LD_PRELOAD=${PL_ASAN_SO}:${PL_UBSAN_SO}" "ASAN_OPTIONS=detect_leaks=0")
endif()
foreach(t run_with_cache curves explore)
  plateau_test(api_${t} ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_${t}.py)
  get_test_property(api_${t} ENVIRONMENT env)
  set_tests_properties(api_${t} PROPERTIES ENVIRONMENT "${env};${PL_API_ENV}")
endforeach()
plateau_test(api_install ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_install.py ${CMAKE_BINARY_DIR}
  ${CMAKE_CURRENT_BINARY_DIR}/api_install)
get_test_property(api_install ENVIRONMENT env)
list(REMOVE_ITEM PL_API_ENV "PLATEAU_LIB=$<TARGET_FILE:plateau_shared>") # the installed one must be found
set_tests_properties(api_install PROPERTIES ENVIRONMENT "${env};${PL_API_ENV}")
