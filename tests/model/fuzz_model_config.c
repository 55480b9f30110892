/* fuzz_models.c as its config.json target (every family's key parsing), for scripts/fuzz.sh. */
#include "fuzz_models.c"
