# The docs' commands (issue 16, item 6): every command of README.md, docs/*.md and slurm/README.md
# checked against plateau's and the scripts' options, every path and link against the repository, every
# job config by --dry-run, and the cheap commands run in a sandbox checkout under the build tree. Labelled
# slow: it checks the docs, not the C code, so it runs in the release pass only (~45 s).
plateau_test(docs_commands ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_commands.py ${CMAKE_CURRENT_BINARY_DIR}/docs_commands)
set_tests_properties(docs_commands PROPERTIES LABELS "slow;docs" TIMEOUT 300)
