# Cluster operations (issue 4): merge, the Slurm scripts on a real single-node Slurm, checkpoint/resume
# and fault handling under MPI.
plateau_test(cluster_merge ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_merge.py)
