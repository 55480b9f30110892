# SAEs (issue 11): SAELens dirs, the SAE direction kinds and readouts, plateau synth-sae. Every test
# makes its own model, data and SAE dirs under the build tree (none needs ../shared); the references
# are numpy (tests/sae/ref_sae.py, tests/sweep/reference.py, tests/core/ref_gpt2.py).
add_executable(sae_probe ${CMAKE_CURRENT_LIST_DIR}/sae_probe.c)
target_include_directories(sae_probe PRIVATE ${PROJECT_SOURCE_DIR}/src/experiment)
target_link_libraries(sae_probe PRIVATE plateau_experiment)
set(PL_SAE_TESTS ${CMAKE_CURRENT_LIST_DIR})
plateau_test(sae_numerics ${SYSTEM_PYTHON} ${PL_SAE_TESTS}/test_numerics.py ${CMAKE_CURRENT_BINARY_DIR}/sae_numerics
  $<TARGET_FILE:sae_probe>)
plateau_test(sae_malformed ${SYSTEM_PYTHON} ${PL_SAE_TESTS}/test_malformed.py ${CMAKE_CURRENT_BINARY_DIR}/sae_malformed
  $<TARGET_FILE:sae_probe>)
foreach(t synth sweep ranks merge recon_bases)
  plateau_test(sae_${t} ${SYSTEM_PYTHON} ${PL_SAE_TESTS}/test_${t}.py ${CMAKE_CURRENT_BINARY_DIR}/sae_${t})
endforeach()
plateau_many_ranks(sae_ranks)
# The same reference checks on a gemma2 model with a Gemma Scope-style (JumpReLU, SAELens cfg) SAE dir.
plateau_test(sae_gemma2 ${SYSTEM_PYTHON} ${PL_SAE_TESTS}/test_sweep.py ${CMAKE_CURRENT_BINARY_DIR}/sae_gemma2 gemma2)
plateau_test(sae_gemma2_recon ${SYSTEM_PYTHON} ${PL_SAE_TESTS}/test_recon_bases.py ${CMAKE_CURRENT_BINARY_DIR}/sae_gemma2_recon
  gemma2)
