# Issue 17's science on a toy model (no ../shared, no MPI): the Fisher metric at a base (exact and
# Lanczos), optima on the sphere (plain, orthogonal, resumed through a checkpoint), clustering and
# alignment, against numpy (tests/experiment/test_fisher.py).
add_executable(fisher_probe ${CMAKE_CURRENT_LIST_DIR}/fisher_probe.c)
target_include_directories(fisher_probe PRIVATE ${PROJECT_SOURCE_DIR}/src/experiment)
target_link_libraries(fisher_probe PRIVATE plateau_experiment)
plateau_test(experiment_fisher ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_fisher.py
  ${CMAKE_CURRENT_BINARY_DIR}/experiment_fisher $<TARGET_FILE:fisher_probe>)

# The fused vector passes (divergences.c, ops.c's gated activations, the soft-cap) against the
# whole-array computations they replaced, bit for bit, on the CPU's path and the scalar one, and
# against the definitions in long double.
add_executable(vector_paths ${CMAKE_CURRENT_LIST_DIR}/vector_paths.c)
target_include_directories(vector_paths PRIVATE ${PROJECT_SOURCE_DIR}/src/experiment ${PROJECT_SOURCE_DIR}/src/model)
target_link_libraries(vector_paths PRIVATE plateau_experiment plateau_model)
plateau_test(experiment_vector_paths $<TARGET_FILE:vector_paths>)
