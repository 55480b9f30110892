# analysis/: the plateau_analysis package and its scripts plot_curves.py and summary.py, run with
# Debian's /usr/bin/python3 ($PYTHON). Fixture files follow the result layout and cover shapes the
# smoke job does not write (merged hooks, no raw curves, a single kind, the scores and paired
# statistics the C side is adding, both encodings of booleans, pdf and svg); the smoke test runs both
# scripts and the README's python example on a real sweep's output.
foreach(case single merged aggregates merged-aggregates one-kind formats)
  plateau_test(analysis_fixture_${case} ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/fixture_test.py ${case})
  list(APPEND PL_ANALYSIS_PY_ONLY analysis_fixture_${case})
endforeach()
plateau_test(analysis_errors ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_errors.py)
plateau_test(analysis_open_result ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_open_result.py)
# Pure Python, no plateau binary involved: nothing for the sanitizers to see, so the ASan pass of
# scripts/test.sh (-LE slow) skips them and they run once, in the release build.
set_tests_properties(${PL_ANALYSIS_PY_ONLY} analysis_errors analysis_open_result PROPERTIES LABELS "slow;analysis")
# The smoke job's real output, single hook and merged over two hooks (needs ../shared; skips without).
plateau_test(analysis_smoke ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/smoke_test.py ${CMAKE_CURRENT_BINARY_DIR}/analysis_smoke)
# Its time is the Python figures' (its sweeps of jobs/smoke.ini run plateau's ordinary paths, which the
# ASan pass covers in the sweep_* tests): so this runs once, in the release pass.
set_tests_properties(analysis_smoke PROPERTIES LABELS "slow;analysis" TIMEOUT 900)
# analysis/plot_fisher.py (issue 17): its table against numpy on a tiny synthetic sweep with [fisher] k,
# the fisher and optimized kinds and a synthetic SAE (a few seconds; runs the plateau binary).
plateau_test(analysis_plot_fisher ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_plot_fisher.py
  ${CMAKE_CURRENT_BINARY_DIR}/analysis_plot_fisher)
# Its figures are pure Python and sweep_fisher runs the same sweep paths under ASan: once, in the release pass.
set_tests_properties(analysis_plot_fisher PROPERTIES LABELS "slow;analysis")
# analysis/plot_slices.py (issue 18 item 3): its tables against numpy on a tiny slice sweep (a few seconds).
plateau_test(analysis_plot_slices ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_plot_slices.py
  ${CMAKE_CURRENT_BINARY_DIR}/analysis_plot_slices)
# Its figures are pure Python and sweep_slices runs the slice paths under ASan: once, in the release pass.
set_tests_properties(analysis_plot_slices PROPERTIES LABELS "slow;analysis")
