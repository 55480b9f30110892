/* fuzz_tokenizer_files.c as its llama2.c tokenizer.bin target, for scripts/fuzz.sh (run_fuzz.sh builds
 * the same with -DFUZZ_LLAMA2C). */
#define FUZZ_LLAMA2C
#include "fuzz_tokenizer_files.c"
