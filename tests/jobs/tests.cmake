# jobs/quickstart.sh, the fetch scripts and the Slurm scripts' arguments (issues 9 and 12). Each test
# works in sandbox checkouts under the build tree and never reaches the network: downloads go to a
# closed local port or to a local HTTP server. The "_shared" variants use the real trained models of
# ../shared and skip without them.
set(PL_JOBS_TESTS ${CMAKE_CURRENT_LIST_DIR})
foreach(t quickstart fetch)
  plateau_test(jobs_${t} ${SYSTEM_PYTHON} ${PL_JOBS_TESTS}/test_${t}.py ${CMAKE_CURRENT_BINARY_DIR}/jobs_${t})
  plateau_test(jobs_${t}_shared ${SYSTEM_PYTHON} ${PL_JOBS_TESTS}/test_${t}.py ${CMAKE_CURRENT_BINARY_DIR}/jobs_${t}_shared shared)
endforeach()
plateau_test(jobs_quickstart_summary ${SYSTEM_PYTHON} ${PL_JOBS_TESTS}/test_quickstart_summary.py ${CMAKE_CURRENT_BINARY_DIR}/jobs_quickstart_summary)
plateau_test(jobs_sbatch_args ${SYSTEM_PYTHON} ${PL_JOBS_TESTS}/test_sbatch_args.py ${CMAKE_CURRENT_BINARY_DIR}/jobs_sbatch_args)
