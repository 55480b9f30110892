/* fuzz_tokenizer_files.c as its tokenizer.json target (-DFUZZ_HF_JSON), for scripts/fuzz.sh. */
#define FUZZ_HF_JSON
#include "fuzz_tokenizer_files.c"
