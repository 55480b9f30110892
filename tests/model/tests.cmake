# Model dirs: safetensors parsing, loading, info/verify/synth (issue 2, items 1 and 2).
set(PL_MODEL_TESTS ${CMAKE_CURRENT_LIST_DIR})
plateau_test(model_malformed ${SYSTEM_PYTHON} ${PL_MODEL_TESTS}/malformed.py)
plateau_test(model_verify ${SYSTEM_PYTHON} ${PL_MODEL_TESTS}/verify.py)
plateau_test(model_synth ${SYSTEM_PYTHON} ${PL_MODEL_TESTS}/synth.py)
plateau_test(model_real_manifest ${SYSTEM_PYTHON} ${PL_MODEL_TESTS}/real_manifest.py)
plateau_test(model_real_models ${SYSTEM_PYTHON} ${PL_MODEL_TESTS}/test_real_models.py)
# The fuzz targets of this area (fuzz_safetensors, fuzz_model_config, fuzz_llama2c_model) run in
# trust_fuzz (scripts/fuzz.sh), with every other target of the project.
# A model's identity over all its weight files: sha256 order, pl_model_check_unchanged of every shard.
add_executable(model_identity ${PL_MODEL_TESTS}/identity.c)
target_link_libraries(model_identity PRIVATE plateau_model)
plateau_test(model_identity ${SYSTEM_PYTHON} ${PL_MODEL_TESTS}/test_identity.py $<TARGET_FILE:model_identity>)
