/* Test-only: GPT-2 as plateau computed it before the one decoder (gpt2_legacy.c). */
#ifndef PLATEAU_GPT2_LEGACY_H
#define PLATEAU_GPT2_LEGACY_H

#include "plateau/model.h"

/* Fill M (zeroed, from pl_calloc; free with pl_model_close) with the GPT-2 dir DIR's
 * model.safetensors and the legacy forward and fast path. */
int gpt2_legacy_open(pl_model *m, const char *dir);

#endif
