# The command line (issue 12): every command's --help against the parser's option table, GNU-style
# --opt=value, usage errors (exit 1, one line), help/-V, the man page (rendered, installed), and
# `plateau run --dry-run` against a hand computation and the real run's peak memory.
plateau_test(cli_help ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_cli.py ${CMAKE_CURRENT_BINARY_DIR}/cli_help
  ${CMAKE_BINARY_DIR} ${CMAKE_COMMAND})
plateau_test(cli_dry_run ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_dry_run.py ${CMAKE_CURRENT_BINARY_DIR}/cli_dry_run)
plateau_test(cli_result_file ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_result_file.py ${CMAKE_CURRENT_BINARY_DIR}/cli_result_file)
plateau_test(cli_setup_ranks ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_setup_ranks.py ${CMAKE_CURRENT_BINARY_DIR}/cli_setup_ranks)
plateau_many_ranks(cli_setup_ranks)
# The result schema (src/io/schema.c): the generated Python _schema.py equals the binary's dump, every
# variable and attribute of a run and a merge is one of its rows, merge checks the hook attribute.
plateau_test(cli_result_schema ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_result_schema.py ${CMAKE_CURRENT_BINARY_DIR}/cli_result_schema)
