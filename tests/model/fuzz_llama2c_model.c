/* fuzz_models.c as its llama2.c checkpoint target (-DFUZZ_LLAMA2C), for scripts/fuzz.sh. */
#define FUZZ_LLAMA2C
#include "fuzz_models.c"
