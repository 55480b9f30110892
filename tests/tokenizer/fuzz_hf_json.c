/* fuzz_tokenizer_files.c as its tokenizer.json target, for scripts/fuzz.sh (run_fuzz.sh builds the
 * same with -DFUZZ_HF_JSON). */
#define FUZZ_HF_JSON
#include "fuzz_tokenizer_files.c"
