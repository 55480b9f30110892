/* fuzz_models.c as its config.json target (every family's key parsing), for scripts/fuzz.sh
 * (fuzz_models.sh builds the same without -DFUZZ_LLAMA2C). */
#include "fuzz_models.c"
