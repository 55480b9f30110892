/* fuzz_tokenizer_files.c as its llama2.c tokenizer.bin target (-DFUZZ_LLAMA2C), for scripts/fuzz.sh. */
#define FUZZ_LLAMA2C
#include "fuzz_tokenizer_files.c"
