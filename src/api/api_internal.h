/* Inside libplateau's public API (include/plateau/plateau.h): the handles behind the opaque types. */
#ifndef PLATEAU_API_INTERNAL_H
#define PLATEAU_API_INTERNAL_H

#include "plateau/forward.h"
#include "plateau/model.h"
#include "plateau/plateau.h"
#include "plateau/tokenizer.h"

struct pl_lm {
    pl_model *model;
    pl_tokenizer *tok; /* opened on first use */
};

struct pl_cache {
    const pl_lm *lm;
    pl_run run;        /* resid [L+1, T, C], k, v, last-position logits */
};

/* Rows per fast-path call of pl_curves: a sweep's batch (PL_BATCH_ROWS in src/sweep/sweep_internal.h;
 * tests/api/check_batch_rows.c fails to compile when they differ). The grouping decides the bits. */
#define PL_API_BATCH_ROWS 1024

/* POS of a run of T positions, negative from the end; an error names WHAT. */
int pl_api_position(int pos, int T, const char *what, int *out);

#endif
