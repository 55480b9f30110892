# GPT-2 tokenizer (issue 2, item 4). See tests/tokenizer/README.md.
add_executable(tok_driver ${CMAKE_CURRENT_LIST_DIR}/tok_driver.c)
target_link_libraries(tok_driver PRIVATE plateau_tokenizer plateau_core)

set(PL_TOK_DIR ${CMAKE_CURRENT_LIST_DIR})
# gpt-3-encoder is installed once per build dir (flock-serialised), not in the source tree.
set(PL_TOK_NPM ${CMAKE_BINARY_DIR}/npm-gpt3-encoder)
foreach(reference gpt3-encoder encoder-py)
  foreach(corpus docs hard)
    plateau_test(tokenizer_${corpus}_${reference} bash ${PL_TOK_DIR}/run_reference.sh ${reference} ${corpus}
      $<TARGET_FILE:tok_driver> ${PL_TOK_NPM})
  endforeach()
endforeach()
