# The sweep: statistics unit tests (C) and end-to-end runs on tiny synthetic models (Python checks
# with numpy/netCDF4 through /usr/bin/python3). Each end-to-end test makes its own model and data
# under the build tree, so none needs ../shared.
add_executable(test_sweep_units ${CMAKE_CURRENT_LIST_DIR}/test_sweep_units.c)
target_include_directories(test_sweep_units PRIVATE ${PROJECT_SOURCE_DIR}/src/sweep ${PROJECT_SOURCE_DIR}/src/experiment)
target_link_libraries(test_sweep_units PRIVATE plateau_sweep)
plateau_test(sweep_units $<TARGET_FILE:test_sweep_units>)

set(PL_SWEEP_TESTS ${CMAKE_CURRENT_LIST_DIR})
foreach(t config config_values config_doc ranks shared_weights naive reference grids statistics score_rules sampling resume faults jobs contexts slices fisher fisher_align fisher_hooks fisher_contexts series optresume optbatch singletons)
  plateau_test(sweep_${t} ${SYSTEM_PYTHON} ${PL_SWEEP_TESTS}/test_${t}.py ${CMAKE_CURRENT_BINARY_DIR}/sweep_${t})
endforeach()
plateau_many_ranks(sweep_ranks sweep_shared_weights sweep_resume sweep_faults sweep_contexts sweep_slices sweep_fisher
  sweep_fisher_align sweep_fisher_hooks sweep_fisher_contexts sweep_optresume sweep_optbatch)
# COST: long ones start first (a fresh clone has no timing data of ctest's)
set_tests_properties(sweep_jobs sweep_config PROPERTIES COST 40)
# Every job in miniature: configs, not C paths of their own (those run under ASan in the sweep_* tests):
# release pass only, for CI's time (it was the ASan pass's longest test, ~110 s).
set_tests_properties(sweep_jobs PROPERTIES LABELS slow)
# Sweeps on every model family (the model engineer's; issue 9).
plateau_test(sweep_families ${SYSTEM_PYTHON} ${PL_SWEEP_TESTS}/test_families.py ${CMAKE_CURRENT_BINARY_DIR}/sweep_families)
plateau_many_ranks(sweep_families)
# Sweeps at attn.hook_z and hook_mlp_out, read at ln_final.hook_normalized (issue 18, item 2).
plateau_test(sweep_hooks ${SYSTEM_PYTHON} ${PL_SWEEP_TESTS}/test_hooks.py ${CMAKE_CURRENT_BINARY_DIR}/sweep_hooks)
# A model series runs several whole sweeps (1 and 2 ranks, a SIGTERM and a resume): ~40 s in the release
# pass, which alone tests it; its code paths are the single-model run's, which the ASan pass covers.
set_tests_properties(sweep_series PROPERTIES LABELS slow COST 60)
# Whole sweeps on 1, 2 and 3 ranks at mid-block hooks, and four ways of holding the weights on BF16, F16
# and F32 models: release pass only, for CI's time; their C paths run under ASan in forward_hooks,
# sweep_naive and sweep_ranks.
set_tests_properties(sweep_hooks sweep_shared_weights PROPERTIES LABELS slow)
# plateau runs without a launcher, several at once (~10 s): release pass only, for CI's time; the C it
# checks is two setenv calls before MPI_Init, which every sweep_* test runs under ASan.
set_tests_properties(sweep_singletons PROPERTIES LABELS slow)
# its churning process spins a whole core and it starts four runs at once: not beside a many-rank test
plateau_many_ranks(sweep_singletons)
# [readout] positions = each interrupted and resumed (issue 18): its run lasts a few seconds so that the
# signal lands mid-run; release pass only (sweep_resume and sweep_contexts run its code under ASan).
plateau_test(sweep_contexts_resume ${SYSTEM_PYTHON} ${PL_SWEEP_TESTS}/test_contexts_resume.py
  ${CMAKE_CURRENT_BINARY_DIR}/sweep_contexts_resume)
plateau_many_ranks(sweep_contexts_resume)
set_tests_properties(sweep_contexts_resume PROPERTIES LABELS slow)
# Runs stopped mid-optimisation and resumed, on 1 and 2 ranks (~10 plateau runs, ~15 s): release pass only, for
# CI's time; its C paths (the optimiser's state, the checkpoint's PLCKPT02 section) pass under ASan when run by hand,
# and the checkpoint reader's are fuzzed (trust_fuzz).
set_tests_properties(sweep_optresume PROPERTIES LABELS slow)
# The local geometry of whole contexts (issue 17 item 4, ~10 plateau runs): release pass only, for CI's time;
# its C paths (each site's geometry, the joint kl_rayleigh at a mid-block hook) run under ASan in
# sweep_fisher_hooks, and the whole test passes under ASan by hand.
set_tests_properties(sweep_fisher_contexts PROPERTIES LABELS slow)
# 2-D slices with the fisher and optimized kinds (issue 17 item 4 in issue 18's slices): ~10 s, ~30 s under
# ASan: release pass only, for CI's time (it passes under ASan by hand; the slice and local-geometry
# paths it combines run under ASan in sweep_slices and sweep_fisher).
plateau_test(sweep_slices_local ${SYSTEM_PYTHON} ${PL_SWEEP_TESTS}/test_slices_local.py
  ${CMAKE_CURRENT_BINARY_DIR}/sweep_slices_local)
plateau_many_ranks(sweep_slices_local)
set_tests_properties(sweep_slices_local PROPERTIES LABELS slow)
