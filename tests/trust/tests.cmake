# Issue 8 ("Trust"): the adversarial cases as regression tests. Each makes its own tiny model and data
# under the build tree, runs without pinning OPENBLAS_NUM_THREADS, and fails on a hang (every run has a
# time limit far above what it needs).
set(PL_TRUST_TESTS ${CMAKE_CURRENT_LIST_DIR})
foreach(t nonfinite files threads inputs)
  plateau_test(trust_${t} ${SYSTEM_PYTHON} ${PL_TRUST_TESTS}/test_${t}.py ${CMAKE_CURRENT_BINARY_DIR}/trust_${t})
endforeach()
