# GPT-2 tokenizer (issue 2, item 4). See tests/tokenizer/README.md.
add_executable(tok_driver ${CMAKE_CURRENT_LIST_DIR}/tok_driver.c)
target_link_libraries(tok_driver PRIVATE plateau_tokenizer)

set(PL_TOK_DIR ${CMAKE_CURRENT_LIST_DIR})
# gpt-3-encoder is installed once per build dir (flock-serialised), not in the source tree.
set(PL_TOK_NPM ${CMAKE_BINARY_DIR}/npm-gpt3-encoder)
# ids equal the references: gpt-3-encoder (npm) and encoder.py's algorithm with Python's regex module,
# on every document of ../shared/data and on the hand-written hard cases.
foreach(reference gpt3-encoder encoder-py)
  foreach(corpus docs hard)
    plateau_test(tokenizer_${corpus}_${reference} bash ${PL_TOK_DIR}/run_reference.sh ${reference} ${corpus}
      $<TARGET_FILE:tok_driver> ${PL_TOK_NPM})
  endforeach()
endforeach()
plateau_test(tokenizer_tiny_encoder-py bash ${PL_TOK_DIR}/run_reference.sh encoder-py tiny
  $<TARGET_FILE:tok_driver> ${PL_TOK_NPM})
# decode(encode(s)) == s on seeded random strings built from hard pieces (GPT-2 vocab and tiny vocab).
foreach(vocab gpt2 tiny)
  plateau_test(tokenizer_roundtrip_${vocab} bash ${PL_TOK_DIR}/test_roundtrip.sh $<TARGET_FILE:tok_driver> ${vocab})
endforeach()
plateau_test(tokenizer_cli bash ${PL_TOK_DIR}/test_cli.sh $<TARGET_FILE:tok_driver>)
plateau_test(tokenizer_bad_vocab bash ${PL_TOK_DIR}/test_bad_vocab.sh)
# The fuzz targets of this area (fuzz_tokenizer, fuzz_hf_json, fuzz_llama2c_tokenizer) run in
# trust_fuzz (scripts/fuzz.sh), with every other target of the project.

# HF tokenizer.json (issue 9): ids and decodes equal the npm package @huggingface/tokenizers (an independent
# pure-JS implementation, installed once per build dir) for every real tokenizer.json of ../shared and
# six synthetic ones (Llama 3 / Qwen2 / SmolLM byte-level, Metaspace first/split, Gemma).
set(PL_TOK_HF_NPM ${CMAKE_BINARY_DIR}/npm-hf-tokenizers)
foreach(name llama2 gpt-neox-20b gpt2 synthetic)
  foreach(corpus docs hard)
    plateau_test(tokenizer_hf_${corpus}_${name} bash ${PL_TOK_DIR}/run_hf_reference.sh ${name} ${corpus}
      $<TARGET_FILE:tok_driver> ${PL_TOK_HF_NPM})
  endforeach()
endforeach()
# llama2.c tokenizer.bin: ids and decode equal run.c's algorithm (llama2c_ref.py), round trips.
foreach(corpus docs hard)
  plateau_test(tokenizer_llama2c_${corpus} bash ${PL_TOK_DIR}/run_llama2c_reference.sh ${corpus} $<TARGET_FILE:tok_driver>)
endforeach()
# Broken tokenizer.json / tokenizer.bin files and lookups: exit 2, one line naming the file and the problem.
plateau_test(tokenizer_bad_files bash ${PL_TOK_DIR}/test_bad_files.sh)
