# Issue 8 ("Trust"): the adversarial cases as regression tests. Each makes its own tiny model and data
# under the build tree, runs without pinning OPENBLAS_NUM_THREADS, and fails on a hang (every run has a
# time limit far above what it needs).
set(PL_TRUST_TESTS ${CMAKE_CURRENT_LIST_DIR})
foreach(t nonfinite files threads inputs model_inputs scores outputs readers locks)
  plateau_test(trust_${t} ${SYSTEM_PYTHON} ${PL_TRUST_TESTS}/test_${t}.py ${CMAKE_CURRENT_BINARY_DIR}/trust_${t})
endforeach()
# Issue 20, item 1: inputs watched for the whole run; the SIGBUS path through a small driver.
add_executable(trust_watch_probe ${CMAKE_CURRENT_LIST_DIR}/watch_probe.c)
target_link_libraries(trust_watch_probe PRIVATE plateau_util)
plateau_test(trust_watched ${SYSTEM_PYTHON} ${PL_TRUST_TESTS}/test_watched.py ${CMAKE_CURRENT_BINARY_DIR}/trust_watched
  $<TARGET_FILE:trust_watch_probe>)
plateau_many_ranks(trust_watched)
# Issue 20, item 3: a rank stopped during setup (mpirun -n 2).
plateau_test(trust_setup_watch ${SYSTEM_PYTHON} ${PL_TRUST_TESTS}/test_setup_watch.py
  ${CMAKE_CURRENT_BINARY_DIR}/trust_setup_watch)
plateau_many_ranks(trust_setup_watch)
# Every libFuzzer target of the project (tests/*/fuzz_*.c), built with clang in its own build dir and run
# for 3 s each (each target runs its seeds and mutations of them; the whole run stays inside the CI budget):
# the bounded CI run of scripts/fuzz.sh (a release is fuzzed for longer by hand).
# The fuzz build has its own sanitizers: run it once, in the release pass (label slow).
plateau_test(trust_fuzz env PLATEAU_FUZZ_BUILD=${CMAKE_BINARY_DIR}/fuzz bash ${PROJECT_SOURCE_DIR}/scripts/fuzz.sh 3)
# COST: the longest test starts first, beside the others (a fresh clone has no timing data of ctest's)
set_tests_properties(trust_fuzz PROPERTIES LABELS slow TIMEOUT 900 COST 200)
set_tests_properties(trust_threads PROPERTIES COST 50)
# Issue 20, item 6 on constructed curves (C): the flat rule, a ratio over a zero median, what nonfinite catches.
add_executable(test_trust_flat ${PL_TRUST_TESTS}/test_flat.c)
target_include_directories(test_trust_flat PRIVATE ${PROJECT_SOURCE_DIR}/src/experiment)
target_link_libraries(test_trust_flat PRIVATE plateau_sweep)
plateau_test(trust_flat $<TARGET_FILE:test_trust_flat>)
