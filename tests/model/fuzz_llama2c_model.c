/* fuzz_models.c as its llama2.c checkpoint target, for scripts/fuzz.sh (fuzz_models.sh builds the same
 * with -DFUZZ_LLAMA2C). */
#define FUZZ_LLAMA2C
#include "fuzz_models.c"
