# Cluster operations (issue 4): merge, the Slurm scripts on a real single-node Slurm, checkpoint/resume
# and fault handling under MPI.
plateau_test(cluster_merge ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_merge.py)
# A private single-node Slurm (munged, slurmctld, slurmd started by hand, stopped by PID): the sbatch
# scripts, the hooks array + merge, preemption -> requeue -> resume, SIGKILL of a rank. About a
# minute; needs root (installs slurm-wlm and munge when missing) and ../shared.
plateau_test(cluster_slurm ${CMAKE_CURRENT_LIST_DIR}/slurm_ci.sh)
plateau_many_ranks(cluster_slurm)
set_tests_properties(cluster_slurm PROPERTIES TIMEOUT 420 LABELS "slow;slurm")
