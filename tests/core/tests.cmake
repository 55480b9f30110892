# Forward pass and fast path against the independent numpy GPT-2 (tests/core/ref_gpt2.py).
add_executable(probe_forward ${CMAKE_CURRENT_LIST_DIR}/probe_forward.c)
target_link_libraries(probe_forward PRIVATE plateau_model)

add_executable(check_groups ${CMAKE_CURRENT_LIST_DIR}/check_groups.c)
target_link_libraries(check_groups PRIVATE plateau_model)

plateau_test(forward_vs_numpy ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_forward.py
  --plateau $<TARGET_FILE:plateau> --probe $<TARGET_FILE:probe_forward> --groups $<TARGET_FILE:check_groups>)
set_tests_properties(forward_vs_numpy PROPERTIES TIMEOUT 600)

# Every model family (llama, mistral, qwen2, gpt_neox, gemma2, llama2.c) against the numpy reference ref_models.py.
plateau_test(forward_families ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_families.py
  --plateau $<TARGET_FILE:plateau> --probe $<TARGET_FILE:probe_forward> --groups $<TARGET_FILE:check_groups>)
set_tests_properties(forward_families PROPERTIES TIMEOUT 600 COST 35)

# GPT-2 through the one decoder against the old GPT-2 forward, bit for bit (issue 16). The old
# forward lives only here (gpt2_legacy.c), with src/model's internal headers.
add_executable(gpt2_bitwise ${CMAKE_CURRENT_LIST_DIR}/gpt2_bitwise.c ${CMAKE_CURRENT_LIST_DIR}/gpt2_legacy.c)
target_include_directories(gpt2_bitwise PRIVATE ${PROJECT_SOURCE_DIR}/src/model)
target_link_libraries(gpt2_bitwise PRIVATE plateau_model)
plateau_test(forward_gpt2_bitwise ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_gpt2_bitwise.py
  --plateau $<TARGET_FILE:plateau> --probe $<TARGET_FILE:gpt2_bitwise>)

# Exact derivatives through the fast path (plateau/grad.h, issue 17) for every family against float64
# central finite differences of the numpy references (ref_models.py).
add_executable(grad_probe ${CMAKE_CURRENT_LIST_DIR}/grad_probe.c)
target_include_directories(grad_probe PRIVATE ${PROJECT_SOURCE_DIR}/src/experiment)
target_link_libraries(grad_probe PRIVATE plateau_experiment plateau_model)
plateau_test(grad_vs_numpy ${SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_grad.py
  --plateau $<TARGET_FILE:plateau> --probe $<TARGET_FILE:grad_probe>)
set_tests_properties(grad_vs_numpy PROPERTIES TIMEOUT 600)
